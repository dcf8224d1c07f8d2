const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g;
const PHONE = /\+?\d[\d ().-]{7,}\d/g;
const WORD = /\p{L}[\p{L}'’-]*/gu;

/**
 * Masks personal data in free text: email addresses, phone numbers, and any word that is a roster first or last name
 * (`names` holds them lower-cased). A set lookup per word, so the cost does not grow with the size of the roster.
 */
export function maskPersonalData(text: string, names: ReadonlySet<string>): string {
  return text
    .replace(EMAIL, '[EMAIL]')
    .replace(PHONE, '[PHONE]')
    .replace(WORD, (w) => (names.has(w.toLowerCase().replaceAll('’', "'")) ? '[NAME]' : w));
}
