/**
 * Every knob of the sample-data generator, in one place. Defect counts are exact per day: each is a share of that
 * day's clean xAPI statements, rounded down, never overlapping another defect.
 */
export interface GeneratorKnobs {
  /** Mean statements per active student per day. */
  eventsPerActiveDay: number;
  /** Share of students' days with any activity, scaled by each student's engagement. */
  activeDayShare: number;
  /** Share of statements identified by LMS account instead of mbox. */
  accountActorShare: number;
  /** Share of statements whose timestamp carries a non-UTC offset. */
  offsetTimestampShare: number;
  courses: string[];
  timezones: string[];
  programs: string[];
  defects: {
    /** Re-sent copies of a valid statement (same id). */
    duplicates: number;
    /** Statements with a required field (verb or timestamp) null or missing. */
    nulls: number;
    /** Timestamps that are not ISO 8601. */
    malformedTimestamps: number;
    /** Timestamps days after the landing day. */
    futureTimestamps: number;
    /** Actors that match no roster identity. */
    unknownStudents: number;
    /** Lines that are not JSON. */
    invalidJson: number;
  };
}

export const DEFAULT_KNOBS: GeneratorKnobs = {
  eventsPerActiveDay: 18,
  activeDayShare: 0.8,
  accountActorShare: 0.25,
  offsetTimestampShare: 0.2,
  courses: ['MATH101', 'BIO110', 'HIST205'],
  timezones: ['Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Europe/London', 'America/Sao_Paulo'],
  programs: ['Science', 'Humanities', 'Engineering'],
  defects: {
    duplicates: 0.02,
    nulls: 0.005,
    malformedTimestamps: 0.004,
    futureTimestamps: 0.002,
    unknownStudents: 0.003,
    invalidJson: 0.002,
  },
};

export type DefectKind = keyof GeneratorKnobs['defects'];
