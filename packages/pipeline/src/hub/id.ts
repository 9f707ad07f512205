/** A model on the hub: `org/name`, at a branch, tag or commit (`@revision`, default main). */
export interface HubId {
  repo: string;
  revision: string;
}

// The hub's repository names: letters, digits, '-', '_' and '.', one '/' between owner and name.
const HUB_ID = /^([A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*)(?:@([\w][\w./-]*))?$/;

/**
 * `org/name[@revision]` as a hub id, or undefined. Which wins when a local folder has that name is
 * the entry's to say (Node: the folder, `parseHubId`); this module runs in the browser too.
 */
export function matchHubId(spec: string): HubId | undefined {
  const m = HUB_ID.exec(spec);
  return m ? { repo: m[1] as string, revision: m[2] ?? 'main' } : undefined;
}

export function formatHubId(id: HubId): string {
  return id.revision === 'main' ? id.repo : `${id.repo}@${id.revision}`;
}

export const isCommit = (revision: string): boolean => /^[0-9a-f]{40}$/.test(revision);
