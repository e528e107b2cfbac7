/**
 * DR (direct routing, IPVS ip_vs_dr_xmit): the packet is sent unchanged to the real server's MAC address;
 * only the Ethernet destination changes. The server holds the VIP and answers the client directly.
 */
export function drRewrite(b: Uint8Array, frameOff: number, mac: Uint8Array): void {
  b.set(mac, frameOff);
}
