// Interface names ↔ indexes over rtnetlink (routes carry an index, `ip` commands and wants carry names).
import { parseAttrs, readString, stringAttr } from './attrs';
import { NetlinkDecodeError } from './decode-error';
import { NLM_F } from './message';
import { decodeIfInfoIndex, encodeIfInfoMsg, IFINFOMSG_LEN, IFLA_IFNAME, RTM } from './rtnl-codec';
import type { Rtnl } from './rtnl-socket';

/** The name of a link message (RTM_NEWLINK), with its index. */
export function decodeLink(data: Buffer): { index: number; name: string | undefined } {
  const index = decodeIfInfoIndex(data);
  const a = parseAttrs(data, IFINFOMSG_LEN).find((x) => x.type === IFLA_IFNAME);
  return { index, name: a ? readString(a.value) : undefined };
}

/** Every link's name by index (one dump). */
export async function readLinkNames(rtnl: Rtnl): Promise<Map<number, string>> {
  const names = new Map<number, string>();
  for (const m of await rtnl.request(RTM.GETLINK, NLM_F.DUMP, encodeIfInfoMsg())) {
    if (m.type !== RTM.NEWLINK) continue;
    const l = decodeLink(m.data);
    if (l.name !== undefined) names.set(l.index, l.name);
  }
  return names;
}

/** The index of interface `name` (one request); rejects with RtnlRequestError ENODEV when there is none. */
export async function linkIndex(rtnl: Rtnl, name: string): Promise<number> {
  const reply = await rtnl.request(RTM.GETLINK, 0, Buffer.concat([encodeIfInfoMsg(), stringAttr(IFLA_IFNAME, name)]));
  const m = reply.find((x) => x.type === RTM.NEWLINK);
  if (!m) throw new NetlinkDecodeError(`no link message in the answer about interface ${name}`);
  return decodeLink(m.data).index;
}
