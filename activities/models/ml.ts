import type densityClustering from 'density-clustering';
import type { agnes } from 'ml-hclust';
import type { kmeans } from 'ml-kmeans';
import type { PCA } from 'ml-pca';
import type { RandomForestClassifier } from 'ml-random-forest';

/** The machine-learning libraries the model activities use. */
export interface MlLibraries {
  PCA: typeof PCA;
  RandomForestClassifier: typeof RandomForestClassifier;
  kmeans: typeof kmeans;
  agnes: typeof agnes;
  DBSCAN: typeof densityClustering.DBSCAN;
}

let loaded: MlLibraries | undefined;
let loading: Promise<MlLibraries> | undefined;

/**
 * Loads the libraries once, on first use: they take a few hundred milliseconds to load and most processes (the CLI,
 * the lake stages) never train or score a model. The model activities await this before any synchronous step.
 */
export function loadMl(): Promise<MlLibraries> {
  loading ??= Promise.all([
    import('ml-pca'),
    import('ml-random-forest'),
    import('ml-kmeans'),
    import('ml-hclust'),
    import('density-clustering'),
  ]).then(([pca, rf, km, hc, dc]) => {
    loaded = {
      PCA: pca.PCA,
      RandomForestClassifier: rf.RandomForestClassifier,
      kmeans: km.kmeans,
      agnes: hc.agnes,
      DBSCAN: dc.default.DBSCAN,
    };
    return loaded;
  });
  return loading;
}

/** The libraries, once `loadMl` has resolved. */
export function ml(): MlLibraries {
  if (!loaded) throw new Error('machine-learning libraries used before loadMl() resolved');
  return loaded;
}
