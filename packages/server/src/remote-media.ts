// Fetching a remote picture without opening the server to SSRF: https only, hosts from an allowlist,
// the address checked after DNS resolution at connect time (request-filtering-agent refuses
// private, loopback, link-local and other non-unicast ranges, so a DNS answer cannot point us
// inward), every redirect checked again as a new request, and caps on size and time.
import * as https from 'node:https';
import type { LookupFunction } from 'node:net';
import { RequestFilteringHttpsAgent } from 'request-filtering-agent';
import { httpError } from './errors.js';

export interface RemoteMediaPolicy {
  /** Exact host names, or `*.example.com` for its subdomains. */
  hosts: string[];
  /** Private addresses (IPs or CIDRs) that are nonetheless allowed. */
  allowAddresses: string[];
  ca?: string;
  maxBytes: number;
  timeoutMs: number;
  /**
   * The resolver (default: the system's, dns.lookup). Each connection asks it once and connects to
   * the address it answered, after that address passed the checks: an answer that changes between
   * a check and the connect (DNS rebinding) has no second lookup to change into.
   */
  lookup?: LookupFunction;
}

const MAX_REDIRECTS = 5;

const refused = (param: string, message: string) => httpError(400, 'invalid_request_error', 'remote_media_refused', message, { param });

export function hostAllowed(host: string, hosts: readonly string[]): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return hosts.some((p) => (p.startsWith('*.') ? h.endsWith(p.slice(1)) && h.length > p.length - 1 : h === p));
}

/** Checks a URL against the policy before anything is sent. */
function checkUrl(raw: string, policy: RemoteMediaPolicy, param: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw refused(param, `'${param}' is not a valid URL`);
  }
  if (url.protocol !== 'https:') throw refused(param, `remote media must be https, not ${url.protocol.replace(':', '')} (${url.origin})`);
  if (url.username || url.password) throw refused(param, 'remote media URLs may not carry credentials');
  if (!hostAllowed(url.hostname, policy.hosts)) throw refused(param, `the host ${url.hostname} is not in the server's remote media allowlist`);
  return url;
}

export class RemoteMediaFetcher {
  private readonly agent: https.Agent;

  constructor(private readonly policy: RemoteMediaPolicy) {
    this.agent = new RequestFilteringHttpsAgent({ allowIPAddressList: policy.allowAddresses, ca: policy.ca, keepAlive: false });
  }

  /** The bytes at `raw` (following checked redirects), or an HttpError 400 saying why not. */
  async fetch(raw: string, param: string, signal?: AbortSignal): Promise<Uint8Array> {
    const deadline = AbortSignal.timeout(this.policy.timeoutMs);
    const stop = signal ? AbortSignal.any([signal, deadline]) : deadline;
    let url = checkUrl(raw, this.policy, param);
    for (let hop = 0; ; hop++) {
      const r = await this.get(url, param, stop);
      if (r.redirect === undefined) return r.body as Uint8Array;
      if (hop >= MAX_REDIRECTS) throw refused(param, `more than ${MAX_REDIRECTS} redirects fetching ${raw}`);
      url = checkUrl(new URL(r.redirect, url).href, this.policy, param);
    }
  }

  private get(url: URL, param: string, signal: AbortSignal): Promise<{ redirect?: string; body?: Uint8Array }> {
    const { maxBytes } = this.policy;
    return new Promise((resolve, reject) => {
      const fail = (message: string) => reject(refused(param, message));
      const req = https.get(url, { agent: this.agent, signal, lookup: this.policy.lookup, headers: { accept: 'image/*, video/*' } }, (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400 && res.headers.location) {
          res.resume();
          resolve({ redirect: res.headers.location });
          return;
        }
        if (status !== 200) {
          res.resume();
          fail(`fetching ${url.origin}${url.pathname} answered HTTP ${status}`);
          return;
        }
        const declared = Number(res.headers['content-length'] ?? 0);
        if (declared > maxBytes) {
          res.destroy();
          fail(`${url.origin}${url.pathname} is ${declared} bytes, more than the limit of ${maxBytes}`);
          return;
        }
        const parts: Buffer[] = [];
        let size = 0;
        res.on('data', (b: Buffer) => {
          size += b.length;
          if (size > maxBytes) {
            res.destroy();
            fail(`${url.origin}${url.pathname} is more than the limit of ${maxBytes} bytes`);
          } else parts.push(b);
        });
        res.on('end', () => resolve({ body: new Uint8Array(Buffer.concat(parts)) }));
        res.on('error', (err) => fail(`fetching ${url.origin}${url.pathname} failed: ${err.message}`));
      });
      req.on('error', (err) => {
        if (signal.aborted) fail(`fetching ${url.origin}${url.pathname} took longer than ${this.policy.timeoutMs} ms or was cancelled`);
        else fail(`fetching ${url.origin}${url.pathname} was refused: ${err.message}`);
      });
    });
  }
}
