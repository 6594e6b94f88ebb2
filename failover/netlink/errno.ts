// Kernel errnos (a netlink ack carries one, negated) by name and text.
import { getSystemErrorMap, getSystemErrorName } from 'node:util';

/** 17 → { code: 'EEXIST', text: 'file already exists' }; one libuv does not know → "Unknown system error -N"; 0 or less → "errno N". */
export function errnoText(errno: number): { code: string; text: string } {
  try {
    const code = getSystemErrorName(-errno);
    return { code, text: getSystemErrorMap().get(-errno)?.[1] ?? code };
  } catch {
    return { code: `errno ${errno}`, text: `errno ${errno}` };
  }
}
