// Public API of certs/: the mesh CA, etcd server and client certificates, connection bundles,
// and a file-following certificate source.
export { CertError, certificateFingerprint, type KeyPairPem } from './keys.ts';
export * from './issue.ts';
export * from './files.ts';
export * from './bundle.ts';
export * from './source.ts';
