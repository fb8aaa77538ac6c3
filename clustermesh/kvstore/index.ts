// Public API of the ClusterMesh kvstore schema: keys, value codecs, label strings, validation.
export * from './types.ts';
export * from './keys.ts';
export * from './labels.ts';
export * from './codecs.ts';
export * from './mesh-view.ts';
export * from './validate.ts';
export * from './records.ts';
export * from './rejections.ts';
