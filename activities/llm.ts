import type Anthropic from '@anthropic-ai/sdk';
import type { Config } from '../config/index.js';

/** A JSON answer from the language model, or why there is none (the caller falls back to its template). */
export type JsonAnswer = { ok: true; value: unknown } | { ok: false; reason: string };

const clients = new WeakMap<Config['llm'], Anthropic>();

/**
 * One client per configuration: its key, endpoint, timeout and retries (the SDK retries 429, 5xx and timeouts). The
 * SDK is loaded on first use, so processes that never call the model do not pay for loading it.
 */
async function client(llm: Config['llm']): Promise<Anthropic> {
  let c = clients.get(llm);
  if (!c) {
    const { default: AnthropicClient } = await import('@anthropic-ai/sdk');
    c = new AnthropicClient({
      apiKey: llm.apiKey,
      ...(llm.baseUrl ? { baseURL: llm.baseUrl } : {}),
      timeout: llm.timeoutMs,
      maxRetries: llm.maxRetries,
    });
    clients.set(llm, c);
  }
  return c;
}

/**
 * Asks the configured model for a JSON array or object and parses the first one in its answer. Never throws: a failed
 * call or an answer without the JSON asked for comes back as a reason. Callers pass aggregates or pseudonymous context
 * only — never a name, email or free text of a student.
 */
export async function askForJson(
  config: Config,
  request: { system: string; prompt: string; shape: 'array' | 'object' },
): Promise<JsonAnswer> {
  if (!config.llm.apiKey) return { ok: false, reason: 'no language model key is set' };
  let text: string;
  try {
    const res = await (
      await client(config.llm)
    ).messages.create({
      model: config.llm.model,
      max_tokens: config.llm.maxTokens,
      system: request.system,
      messages: [{ role: 'user', content: request.prompt }],
    });
    text = res.content.map((b) => (b.type === 'text' ? b.text : '')).join('');
  } catch (err) {
    return { ok: false, reason: `language model call failed: ${(err as Error).message.split('\n')[0]}` };
  }
  const [open, close] = request.shape === 'array' ? ['[', ']'] : ['{', '}'];
  try {
    return { ok: true, value: JSON.parse(text.slice(text.indexOf(open), text.lastIndexOf(close) + 1)) as unknown };
  } catch {
    return { ok: false, reason: 'answer was not the JSON asked for' };
  }
}
