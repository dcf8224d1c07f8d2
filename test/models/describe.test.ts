import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeSegments, type SegmentSummary } from '../../activities/models/describe.js';
import { startMessagesApi, testConfig } from '../helpers.js';

/** A Messages API on loopback: answers with whatever `reply` says and keeps every request body. */
let reply: { status: number; text: string } = { status: 200, text: '[]' };
let api: Awaited<ReturnType<typeof startMessagesApi>>;
let bodies: string[] = [];
let baseUrl = '';

beforeAll(async () => {
  api = await startMessagesApi(() => reply);
  bodies = api.requests;
  baseUrl = api.baseUrl;
});
afterAll(() => api.close());

const segments: SegmentSummary[] = [
  {
    size: 40,
    means: { forum_posts_28d: [6.2, 1.1], video_minutes_28d: [10, 30] },
    template: 'Students who are active in the forum',
  },
  {
    size: 60,
    means: { forum_posts_28d: [0.1, 1.1], video_minutes_28d: [80, 30] },
    template: 'Students who watch a lot of video',
  },
];

describe('segment descriptions', () => {
  it('uses the template without an API key', async () => {
    const d = await describeSegments(testConfig(), segments);
    expect(d).toEqual({ descriptions: segments.map((s) => s.template), source: 'template' });
  });

  it("takes the language model's sentences, sending only aggregates", async () => {
    const config = testConfig({
      ANTHROPIC_API_KEY: 'sk-test-key',
      EDLAKE_LLM_BASE_URL: baseUrl,
      EDLAKE_LLM_MAX_RETRIES: '0',
    });
    reply = {
      status: 200,
      text: JSON.stringify([
        'They discuss the course a lot in the forum.',
        'They learn mostly from the lecture videos.',
      ]),
    };
    bodies.length = 0;
    const d = await describeSegments(config, segments);
    expect(d.source).toBe('llm');
    expect(d.descriptions[1]).toBe('They learn mostly from the lecture videos.');
    expect(bodies).toHaveLength(1);
    const sent = JSON.parse(bodies[0]!) as { messages: { content: string }[] };
    expect(sent.messages[0]!.content).toContain('Segment 1 (40 students)');
    // No student key (12 base32 characters, digits among them as good as always) in what is sent.
    expect(bodies[0]).not.toMatch(/\b(?=[a-z]*[2-7])[a-z2-7]{12}\b/);
  });

  it('falls back to the template, with the reason, on a bad answer or a failing call', async () => {
    const config = testConfig({
      ANTHROPIC_API_KEY: 'sk-test-key',
      EDLAKE_LLM_BASE_URL: baseUrl,
      EDLAKE_LLM_MAX_RETRIES: '0',
    });
    reply = { status: 200, text: JSON.stringify(['Only one sentence.']) };
    const short = await describeSegments(config, segments);
    expect(short.source).toBe('template');
    expect(short.fallbackReason).toMatch(/1 descriptions for 2 segments/);
    reply = { status: 500, text: '' };
    const failed = await describeSegments(config, segments);
    expect(failed.source).toBe('template');
    expect(failed.fallbackReason).toMatch(/language model call failed/);
    expect(failed.descriptions).toEqual(segments.map((s) => s.template));
  });
});
