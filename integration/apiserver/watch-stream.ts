// A watch response: chunked JSON lines of {type, object}, selector transitions turned into
// ADDED/DELETED as kube-apiserver does, BOOKMARKs from etcd progress, ERROR 410 when too old.
import type { ServerResponse } from 'node:http';
import type { ResourceType } from './resources.ts';
import { apiVersionOf } from './resources.ts';
import type { KubeObject, ObjectStore, WatchEventType } from './store.ts';
import { ApiError } from './status.ts';

export interface WatchRequest {
  r: ResourceType;
  namespace: string | undefined;
  filter: (o: KubeObject) => boolean;
  /** "" or "0": send the current state as ADDED first; otherwise resume after this revision. */
  resourceVersion: string;
  bookmarks: boolean;
  timeoutSeconds: number;
  /** Wraps objects, e.g. into a one-row Table when the client asked for Tables. */
  render: (o: KubeObject) => object;
}

export async function serveWatch(
  store: ObjectStore,
  req: WatchRequest,
  res: ServerResponse,
): Promise<void> {
  res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
  res.flushHeaders();
  const send = (type: string, object: object) => {
    if (!res.writableEnded) res.write(JSON.stringify({ type, object }) + '\n');
  };
  let fromRevision: number;
  if (req.resourceVersion === '' || req.resourceVersion === '0') {
    const initial = await store.list(req.r, req.namespace, { filter: req.filter });
    for (const o of initial.items) send('ADDED', req.render(o));
    fromRevision = Number(initial.resourceVersion);
  } else {
    fromRevision = Number(req.resourceVersion);
    if (!Number.isInteger(fromRevision) || fromRevision < 0) {
      sendError(
        send,
        new ApiError(400, 'BadRequest', `invalid resourceVersion "${req.resourceVersion}"`),
      );
      res.end();
      return;
    }
  }
  let lastSent = fromRevision;
  let cancel: (() => Promise<void>) | undefined;
  const finish = () => {
    clearTimeout(timer);
    void cancel?.().catch(() => undefined);
    if (!res.writableEnded) res.end();
  };
  const timer = setTimeout(finish, req.timeoutSeconds * 1000);
  timer.unref();
  res.on('close', finish);
  try {
    cancel = await store.watch(req.r, req.namespace, fromRevision, {
      event(type, obj, previous) {
        const out = transition(type, req.filter(obj), previous ? req.filter(previous) : false);
        lastSent = Number(obj.metadata.resourceVersion);
        if (out) send(out, req.render(obj));
      },
      progress(revision) {
        if (req.bookmarks && revision > lastSent) {
          lastSent = revision;
          send('BOOKMARK', {
            kind: req.r.kind,
            apiVersion: apiVersionOf(req.r),
            metadata: { resourceVersion: String(revision) },
          });
        }
      },
      error(err) {
        sendError(send, err);
        finish();
      },
    });
    if (res.writableEnded) void cancel().catch(() => undefined);
  } catch (err) {
    sendError(
      send,
      err instanceof ApiError
        ? err
        : new ApiError(500, 'InternalError', String(err), undefined, { cause: err }),
    );
    finish();
  }
}

function sendError(send: (type: string, o: object) => void, err: ApiError): void {
  send('ERROR', err.toStatus());
}

/** How a change looks through a selector: entering is ADDED, leaving is DELETED. */
function transition(
  type: WatchEventType,
  matchesNow: boolean,
  matchedBefore: boolean,
): WatchEventType | undefined {
  if (type === 'ADDED') return matchesNow ? 'ADDED' : undefined;
  if (type === 'DELETED') return matchedBefore ? 'DELETED' : undefined;
  if (matchesNow && matchedBefore) return 'MODIFIED';
  if (matchesNow) return 'ADDED';
  if (matchedBefore) return 'DELETED';
  return undefined;
}
