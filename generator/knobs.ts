/**
 * Every knob of the sample-data generator, in one place. Defect counts are exact per source and day: each is a
 * share of that day's clean records of the source, rounded down, and no record carries two defects.
 */
export interface GeneratorKnobs {
  /** Share of students' days with any activity, scaled by each student's engagement. */
  activeDayShare: number;
  /** Mean records per active student and day, by source. */
  perActiveDay: { xapi: number; caliper: number; lmsCsv: number };
  /** Chance per active day of a video session, an assessment submission, a forum post. */
  videoShare: number;
  assessmentShare: number;
  forumShare: number;
  /** Chance per active day that a consenting student streams sensor samples, and the sample period. */
  sensorShare: number;
  sensorPeriodSeconds: number;
  /** Share of xAPI statements identified by LMS account instead of mbox. */
  accountActorShare: number;
  /** Share of xAPI timestamps with a non-UTC offset. */
  offsetTimestampShare: number;
  /** Sources whose files are written gzip-compressed, as many LRS and LMS exports are. */
  gzipSources: string[];
  courses: string[];
  timezones: string[];
  programs: string[];
  /** Shares of clean records turned into each defect. */
  defects: {
    duplicates: number;
    nulls: number;
    badTypes: number;
    malformedTimestamps: number;
    futureTimestamps: number;
    wrongOffsets: number;
    unknownStudents: number;
    invalidJson: number;
    outOfTerm: number;
    /** Valid records whose event time is 1–3 days before the landing day (from the fourth day on). */
    lateArrivals: number;
    /** Forum texts naming a student, an email address or a phone number. */
    personalDataInText: number;
  };
}

export const DEFAULT_KNOBS: GeneratorKnobs = {
  activeDayShare: 0.8,
  perActiveDay: { xapi: 18, caliper: 6, lmsCsv: 8 },
  videoShare: 0.4,
  assessmentShare: 0.3,
  forumShare: 0.1,
  sensorShare: 0.3,
  sensorPeriodSeconds: 5,
  accountActorShare: 0.25,
  offsetTimestampShare: 0.2,
  gzipSources: ['caliper'],
  courses: ['MATH101', 'BIO110', 'HIST205'],
  timezones: ['Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Europe/London', 'America/Sao_Paulo'],
  programs: ['Science', 'Humanities', 'Engineering'],
  defects: {
    duplicates: 0.02,
    nulls: 0.005,
    badTypes: 0.004,
    malformedTimestamps: 0.004,
    futureTimestamps: 0.002,
    wrongOffsets: 0.002,
    unknownStudents: 0.003,
    invalidJson: 0.002,
    outOfTerm: 0.002,
    lateArrivals: 0.01,
    personalDataInText: 0.3,
  },
};

export type DefectKind = keyof GeneratorKnobs['defects'];
