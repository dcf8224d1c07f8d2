import { Client, Connection } from '@temporalio/client';
import type { Config } from '../config/index.js';
import { CliError, EXIT } from './errors.js';

/** A Temporal client, or one clear line when the server cannot be reached. */
export async function connectClient(config: Config): Promise<{ client: Client; close: () => Promise<void> }> {
  let connection: Connection;
  try {
    connection = await Connection.connect({ address: config.temporal.address, connectTimeout: 5000 });
    await connection.healthService.check({});
  } catch {
    throw new CliError(
      `Temporal at ${config.temporal.address} is unreachable${config.temporal.external ? '' : ' (start it with: edlake services up)'}`,
      EXIT.service,
    );
  }
  return { client: new Client({ connection, namespace: config.temporal.namespace }), close: () => connection.close() };
}
