export { nightlyPipeline, progressQuery } from './nightly.js';
export { retrainModel } from './retrain.js';
export { interventionWorkflow, approveSignal, rejectSignal, interventionQuery } from './intervention.js';
