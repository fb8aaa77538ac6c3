import test from 'ava';
import fc from 'fast-check';
import {
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
} from './selectors.ts';
import { ApiError } from './status.ts';

const sel = (s: string, labels: Record<string, string>) =>
  matchesLabels(parseLabelSelector(s), labels);

test('equality, inequality and set operators follow kube semantics', (t) => {
  const web = { app: 'web', tier: 'front' };
  t.true(sel('app=web', web));
  t.true(sel('app==web', web));
  t.false(sel('app=db', web));
  t.true(sel('app!=db', web));
  t.true(sel('env!=prod', web), '!= matches objects without the key');
  t.true(sel('app in (db, web)', web));
  t.false(sel('env in (prod)', web));
  t.true(sel('env notin (prod)', web), 'notin matches objects without the key');
  t.false(sel('tier notin (front,back)', web));
  t.true(sel('tier', web));
  t.false(sel('!tier', web));
  t.true(sel('!env', web));
  t.true(sel('app=web, tier in (front), !env', web));
  t.false(sel('app=web,env', web));
  t.true(sel('', web));
  t.true(sel('k8s.io/app in (a,b)', { 'k8s.io/app': 'b' }));
});

test('malformed selectors are 400 BadRequest', (t) => {
  for (const bad of ['app=we b', 'a b c', 'x in (a b)', '=v']) {
    const err = t.throws(() => parseLabelSelector(bad), undefined, bad);
    t.true(err instanceof ApiError && err.code === 400, bad);
  }
});

test('field selectors accept only the fields the kind supports', (t) => {
  const allowed = ['metadata.name', 'spec.nodeName', 'status.phase'];
  const pod = { metadata: { name: 'a' }, spec: { nodeName: 'n1' }, status: { phase: 'Running' } };
  t.true(matchesFields(parseFieldSelector('spec.nodeName=n1,status.phase!=Pending', allowed), pod));
  t.false(matchesFields(parseFieldSelector('spec.nodeName==n2', allowed), pod));
  t.true(
    matchesFields(parseFieldSelector('spec.nodeName=', allowed), { metadata: { name: 'b' } }),
    'unset equals empty',
  );
  const err = t.throws(() => parseFieldSelector('spec.color=red', allowed));
  t.regex(err?.message ?? '', /field label not supported: spec.color/);
});

test('property: "k in (v)" and "k=v" agree, and "k notin (v)" is their negation', (t) => {
  const word = fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/);
  fc.assert(
    fc.property(fc.dictionary(word, word), word, word, (labels, k, v) => {
      const eq = sel(`${k}=${v}`, labels);
      return (
        sel(`${k} in (${v})`, labels) === eq &&
        sel(`${k} notin (${v})`, labels) === !eq &&
        sel(`${k}!=${v}`, labels) === !eq
      );
    }),
  );
  t.pass();
});
