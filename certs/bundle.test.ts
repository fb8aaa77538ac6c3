import test from 'ava';
import { createPrivateKey } from 'node:crypto';
import { decodeJwt, SignJWT } from 'jose';
import { certificateFingerprint } from './keys.ts';
import { signBundle, verifyBundle, type BundleErrorCode } from './bundle.ts';
import { createMeshCa, issueClientCertificate } from './issue.ts';

const ca = await createMeshCa();
const otherCa = await createMeshCa();
const client = await issueClientCertificate(ca, { user: 'remote-c2', validity: { days: 10 } });
const request = { cluster: 'c1', clusterId: 1, endpoints: ['https://172.18.0.10:2379'], client };

async function expectRefused(
  t: import('ava').ExecutionContext,
  token: string,
  code: BundleErrorCode,
  now?: Date,
) {
  const r = await verifyBundle(token, ca.certPem, now);
  if (r.ok) return t.fail('bundle accepted');
  t.is(r.error.code, code, r.error.detail);
  t.true(r.error.detail.length > 10);
}

test('a signed bundle verifies and carries everything needed to connect', async (t) => {
  const token = await signBundle(ca, request);
  const r = await verifyBundle(token, ca.certPem);
  if (!r.ok) return t.fail(r.error.detail);
  t.like(r.value, {
    version: 1,
    cluster: 'c1',
    clusterId: 1,
    endpoints: ['https://172.18.0.10:2379'],
    user: 'remote-c2',
  });
  t.is(r.value.caPem, ca.certPem);
  t.is(r.value.certPem, client.certPem);
  t.is(r.value.keyPem, client.keyPem);
});

test('expiry defaults to and is capped by the client certificate expiry', async (t) => {
  const capped = decodeJwt(
    await signBundle(ca, { ...request, expiresAt: new Date(Date.now() + 400 * 86400_000) }),
  );
  const certExpiry = Date.now() + 10 * 86400_000;
  t.true(Math.abs(capped.exp! * 1000 - certExpiry) < 60_000);
  const short = decodeJwt(
    await signBundle(ca, { ...request, expiresAt: new Date(Date.now() + 3600_000) }),
  );
  t.true(Math.abs(short.exp! * 1000 - (Date.now() + 3600_000)) < 60_000);
});

test('an expired bundle is refused', async (t) => {
  const token = await signBundle(ca, { ...request, expiresAt: new Date(Date.now() + 3600_000) });
  await expectRefused(t, token, 'ERR_BUNDLE_EXPIRED', new Date(Date.now() + 2 * 3600_000));
});

test('a tampered bundle is refused (payload changed, signature kept)', async (t) => {
  const token = await signBundle(ca, request);
  const [h, p, s] = token.split('.');
  const payload = JSON.parse(Buffer.from(p!, 'base64url').toString());
  payload.bundle.endpoints = ['https://203.0.113.66:2379'];
  await expectRefused(
    t,
    `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`,
    'ERR_BUNDLE_TAMPERED',
  );
});

test('a bundle with a flipped signature byte is refused', async (t) => {
  const token = await signBundle(ca, request);
  const [h, p, s] = token.split('.');
  const sig = Buffer.from(s!, 'base64url');
  sig[10]! ^= 1;
  await expectRefused(t, `${h}.${p}.${sig.toString('base64url')}`, 'ERR_BUNDLE_TAMPERED');
});

test('a bundle signed by another CA is refused as wrong signer', async (t) => {
  const foreignClient = await issueClientCertificate(otherCa, { user: 'remote-c2' });
  const token = await signBundle(otherCa, { ...request, client: foreignClient });
  await expectRefused(t, token, 'ERR_BUNDLE_WRONG_SIGNER');
});

test("a bundle signed by the mesh CA but carrying another CA's client certificate is refused", async (t) => {
  const foreignClient = await issueClientCertificate(otherCa, { user: 'remote-c2' });
  await expectRefused(
    t,
    await signBundle(ca, { ...request, client: foreignClient }),
    'ERR_BUNDLE_CERT_INVALID',
  );
});

test('a bundle whose client key does not match its certificate is refused', async (t) => {
  const another = await issueClientCertificate(ca, { user: 'remote-c2' });
  await expectRefused(
    t,
    await signBundle(ca, { ...request, client: { ...client, keyPem: another.keyPem } }),
    'ERR_BUNDLE_CERT_INVALID',
  );
});

test('garbage is refused as malformed', async (t) => {
  await expectRefused(t, 'not a bundle', 'ERR_BUNDLE_MALFORMED');
  await expectRefused(t, 'a.b.c', 'ERR_BUNDLE_MALFORMED');
});

test('signing refuses a structurally invalid bundle', async (t) => {
  await t.throwsAsync(signBundle(ca, { ...request, clusterId: 0 }), { message: /clusterId/ });
  await t.throwsAsync(signBundle(ca, { ...request, endpoints: ['http://plain:2379'] }), {
    message: /endpoints/,
  });
});

test('a CA-signed bundle whose user differs from its certificate CN is refused', async (t) => {
  const good = decodeJwt(await signBundle(ca, request)) as { bundle: Record<string, unknown> };
  const forged = await new SignJWT({ bundle: { ...good.bundle, user: 'clustermesh-apiserver' } })
    .setProtectedHeader({
      alg: 'ES256',
      typ: 'isthmus-bundle+jwt',
      kid: certificateFingerprint(ca.certPem),
    })
    .setIssuer('isthmus-mesh-ca')
    .setSubject('c1')
    .setExpirationTime('1h')
    .sign(createPrivateKey(ca.keyPem));
  await expectRefused(t, forged, 'ERR_BUNDLE_CERT_INVALID');
});
