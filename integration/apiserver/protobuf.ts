// Decoding of the Kubernetes protobuf encoding that kubectl's typed clients send for a few
// built-in kinds (`kubectl create namespace|configmap|secret|service`). The field numbers mirror
// k8s.io/api/core/v1/generated.proto and k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto;
// unknown fields are skipped. Responses are always JSON, which those clients also accept.
import { badRequest, unsupportedMediaType } from './status.ts';

type Value = string | number | boolean | Value[] | { [k: string]: Value };
type Kind = 'string' | 'bytes' | 'int' | 'bool' | 'time' | 'intOrString' | 'stringMap' | 'bytesMap';
interface Field {
  name: string;
  kind: Kind | Schema;
  repeated?: boolean;
}
type Schema = { [num: number]: Field };

const OWNER_REFERENCE: Schema = {
  1: { name: 'kind', kind: 'string' },
  3: { name: 'name', kind: 'string' },
  4: { name: 'uid', kind: 'string' },
  5: { name: 'apiVersion', kind: 'string' },
  6: { name: 'controller', kind: 'bool' },
  7: { name: 'blockOwnerDeletion', kind: 'bool' },
};

const OBJECT_META: Schema = {
  1: { name: 'name', kind: 'string' },
  2: { name: 'generateName', kind: 'string' },
  3: { name: 'namespace', kind: 'string' },
  5: { name: 'uid', kind: 'string' },
  6: { name: 'resourceVersion', kind: 'string' },
  7: { name: 'generation', kind: 'int' },
  8: { name: 'creationTimestamp', kind: 'time' },
  11: { name: 'labels', kind: 'stringMap' },
  12: { name: 'annotations', kind: 'stringMap' },
  13: { name: 'ownerReferences', kind: OWNER_REFERENCE, repeated: true },
  14: { name: 'finalizers', kind: 'string', repeated: true },
};

const SERVICE_PORT: Schema = {
  1: { name: 'name', kind: 'string' },
  2: { name: 'protocol', kind: 'string' },
  3: { name: 'port', kind: 'int' },
  4: { name: 'targetPort', kind: 'intOrString' },
  5: { name: 'nodePort', kind: 'int' },
  6: { name: 'appProtocol', kind: 'string' },
};

export const PROTOBUF_SCHEMAS: Record<string, Schema> = {
  DeleteOptions: {
    1: { name: 'gracePeriodSeconds', kind: 'int' },
    2: {
      name: 'preconditions',
      kind: { 1: { name: 'uid', kind: 'string' }, 2: { name: 'resourceVersion', kind: 'string' } },
    },
    4: { name: 'propagationPolicy', kind: 'string' },
    5: { name: 'dryRun', kind: 'string', repeated: true },
  },
  Namespace: {
    1: { name: 'metadata', kind: OBJECT_META },
    2: { name: 'spec', kind: { 1: { name: 'finalizers', kind: 'string', repeated: true } } },
  },
  ConfigMap: {
    1: { name: 'metadata', kind: OBJECT_META },
    2: { name: 'data', kind: 'stringMap' },
    3: { name: 'binaryData', kind: 'bytesMap' },
    4: { name: 'immutable', kind: 'bool' },
  },
  Secret: {
    1: { name: 'metadata', kind: OBJECT_META },
    2: { name: 'data', kind: 'bytesMap' },
    3: { name: 'type', kind: 'string' },
    4: { name: 'stringData', kind: 'stringMap' },
    5: { name: 'immutable', kind: 'bool' },
  },
  Service: {
    1: { name: 'metadata', kind: OBJECT_META },
    2: {
      name: 'spec',
      kind: {
        1: { name: 'ports', kind: SERVICE_PORT, repeated: true },
        2: { name: 'selector', kind: 'stringMap' },
        3: { name: 'clusterIP', kind: 'string' },
        4: { name: 'type', kind: 'string' },
        5: { name: 'externalIPs', kind: 'string', repeated: true },
        7: { name: 'sessionAffinity', kind: 'string' },
      },
    },
  },
};

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  done = () => this.pos >= this.buf.length;
  varint(): bigint {
    let result = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (this.pos >= this.buf.length || shift > 63n) throw badRequest('truncated protobuf varint');
      const b = this.buf[this.pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
    }
  }
  bytes(): Buffer {
    const len = Number(this.varint());
    if (this.pos + len > this.buf.length) throw badRequest('truncated protobuf field');
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw badRequest(`unsupported protobuf wire type ${wire}`);
  }
}

/** Raw fields of one message: field number → list of (wire type, payload). */
function fields(buf: Buffer): Map<number, { wire: number; varint?: bigint; bytes?: Buffer }[]> {
  const r = new Reader(buf);
  const out = new Map<number, { wire: number; varint?: bigint; bytes?: Buffer }[]>();
  while (!r.done()) {
    const tag = Number(r.varint());
    const num = tag >>> 3;
    const wire = tag & 7;
    const list = out.get(num) ?? [];
    if (wire === 0) list.push({ wire, varint: r.varint() });
    else if (wire === 2) list.push({ wire, bytes: r.bytes() });
    else {
      r.skip(wire);
      continue;
    }
    out.set(num, list);
  }
  return out;
}

function decodeValue(kind: Kind | Schema, raw: { varint?: bigint; bytes?: Buffer }): Value {
  if (typeof kind === 'object') return decodeMessage(raw.bytes ?? Buffer.alloc(0), kind);
  switch (kind) {
    case 'string':
      return (raw.bytes ?? Buffer.alloc(0)).toString('utf8');
    case 'bytes':
      return (raw.bytes ?? Buffer.alloc(0)).toString('base64');
    case 'int':
      return Number(BigInt.asIntN(64, raw.varint ?? 0n));
    case 'bool':
      return (raw.varint ?? 0n) !== 0n;
    case 'time': {
      const t = fields(raw.bytes ?? Buffer.alloc(0));
      const seconds = Number(t.get(1)?.[0]?.varint ?? 0n);
      return new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    }
    case 'intOrString': {
      const f = fields(raw.bytes ?? Buffer.alloc(0));
      const isString = (f.get(1)?.[0]?.varint ?? 0n) === 1n;
      return isString
        ? (f.get(3)?.[0]?.bytes ?? Buffer.alloc(0)).toString()
        : Number(f.get(2)?.[0]?.varint ?? 0n);
    }
    case 'stringMap':
    case 'bytesMap':
      throw new Error('maps are decoded by decodeMessage');
  }
}

function decodeMessage(buf: Buffer, schema: Schema): { [k: string]: Value } {
  const out: { [k: string]: Value } = {};
  for (const [num, raws] of fields(buf)) {
    const f = schema[num];
    if (!f) continue;
    if (f.kind === 'stringMap' || f.kind === 'bytesMap') {
      const valueKind = f.kind === 'stringMap' ? 'string' : 'bytes';
      const map: { [k: string]: Value } = {};
      for (const raw of raws) {
        const entry = fields(raw.bytes ?? Buffer.alloc(0));
        const key = (entry.get(1)?.[0]?.bytes ?? Buffer.alloc(0)).toString();
        map[key] = decodeValue(valueKind, entry.get(2)?.[0] ?? {});
      }
      out[f.name] = map;
    } else if (f.repeated) {
      out[f.name] = raws.map((raw) => decodeValue(f.kind, raw));
    } else {
      const v = decodeValue(f.kind, raws[raws.length - 1]!);
      if (!isZero(v, f.kind)) out[f.name] = v;
    }
  }
  return out;
}

/** Go writes zero values that its JSON encoding omits (omitempty); drop them the same way. */
function isZero(v: Value, kind: Kind | Schema): boolean {
  if (kind === 'time') return v === '1970-01-01T00:00:00Z';
  return v === '' || v === 0 || v === false;
}

const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]); // "k8s\0"

/** Decodes a `application/vnd.kubernetes.protobuf` body into the JSON object it stands for. */
export function decodeKubernetesProtobuf(body: Buffer): Record<string, unknown> {
  if (!body.subarray(0, 4).equals(MAGIC))
    throw badRequest('protobuf body lacks the "k8s\\0" prefix');
  const unknown = fields(body.subarray(4));
  const typeMeta = fields(unknown.get(1)?.[0]?.bytes ?? Buffer.alloc(0));
  const apiVersion = (typeMeta.get(1)?.[0]?.bytes ?? Buffer.alloc(0)).toString();
  const kind = (typeMeta.get(2)?.[0]?.bytes ?? Buffer.alloc(0)).toString();
  const schema = PROTOBUF_SCHEMAS[kind];
  if (!schema || (apiVersion !== 'v1' && apiVersion !== 'meta.k8s.io/v1'))
    throw unsupportedMediaType(`application/vnd.kubernetes.protobuf for ${apiVersion} ${kind}`);
  const obj = decodeMessage(unknown.get(2)?.[0]?.bytes ?? Buffer.alloc(0), schema);
  return { apiVersion, kind, ...obj };
}
