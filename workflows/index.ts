export { nightlyPipeline, progressQuery } from './nightly.js';
