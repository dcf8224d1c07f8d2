import { describe, expect, it } from 'vitest';
import { maskPersonalData } from '../../activities/silver/mask.js';

describe('maskPersonalData', () => {
  const names = new Set(['ada', 'lovelace', "o'neil"]);
  it('masks roster names as whole words, any case, and emails and phone numbers', () => {
    expect(
      maskPersonalData(
        'Thanks Ada LOVELACE and O’Neil; write ada.lovelace.3@students.example.edu or +1 555 123 4567',
        names,
      ),
    ).toBe('Thanks [NAME] [NAME] and [NAME]; write [EMAIL] or [PHONE]');
    expect(maskPersonalData("O'Neil said Adaptive learning helps", names)).toBe('[NAME] said Adaptive learning helps');
  });
});
