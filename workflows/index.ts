export { nightlyPipeline, progressQuery } from './nightly.js';
export { retrainModel } from './retrain.js';
export { interventionWorkflow, approveSignal, rejectSignal, interventionQuery } from './intervention.js';
export { backfillRange, backfillProgressQuery } from './backfill.js';
export { scheduledNightly } from './scheduled.js';
export { pauseDeliverySignal, resumeDeliverySignal } from './intervention.js';
