/**
 * DR (direct routing, IPVS ip_vs_dr_xmit): the packet is sent unchanged to the real server's MAC address;
 * only the Ethernet destination changes. The server holds the VIP and answers the client directly.
 */
import { directMode, FWD_DR } from './mode.js';

export function drRewrite(b: Uint8Array, frameOff: number, mac: Uint8Array): void {
  b.set(mac, frameOff);
}

export const drMode = directMode(FWD_DR, 'dr');
