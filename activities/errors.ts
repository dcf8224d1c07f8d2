import { ApplicationFailure } from '@temporalio/common';

/** Failure types that retrying cannot fix; workflows and operators see them by name. */
export enum ErrorType {
  BadInput = 'BadInput',
  MissingInput = 'MissingInput',
  ContractViolation = 'ContractViolation',
  MissingPartition = 'MissingPartition',
  DeliveryRejected = 'DeliveryRejected',
}

export function nonRetryable(type: ErrorType, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: true });
}
