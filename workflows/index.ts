export { nightlyPipeline, progressQuery } from './nightly.js';
export { retrainModel } from './retrain.js';
