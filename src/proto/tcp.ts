/**
 * TCP state machines as data: `next[row * NSTATES + state]`.
 *
 * dpvs: the three tables of DPVS src/ipvs/ip_vs_proto_tcp.c (tcp_states[]: INPUT, OUTPUT, INPUT-ONLY),
 *   rows = table offset (0 input, 4 output, 8 input-only) + event (syn 0, fin 1, ack 2, rst 3; flags are
 *   taken with priority RST > SYN > FIN > ACK, tcp_state_idx()); a segment with none of them moves to CLOSE.
 *   Default timeouts from tcp_timeouts[].
 * netfilter: tcp_conntracks[2][6][10] of Linux net/netfilter/nf_conntrack_proto_tcp.c (ORIGINAL/REPLY ×
 *   syn, synack, fin, ack, rst, none — get_conntrack_index()), with sIV (invalid) and sIG (ignore) as the
 *   two extra values; default timeouts from tcp_timeouts[] (incl. the 5-minute RETRANS and UNACK caps).
 */

/* ---------------- DPVS ---------------- */

export const D_NONE = 0;
export const D_ESTABLISHED = 1;
export const D_SYN_SENT = 2;
export const D_SYN_RECV = 3;
export const D_FIN_WAIT = 4;
export const D_TIME_WAIT = 5;
export const D_CLOSE = 6;
export const D_CLOSE_WAIT = 7;
export const D_LAST_ACK = 8;
export const D_LISTEN = 9;
export const D_SYNACK = 10;
export const D_NSTATES = 11;

export const DPVS_TCP_STATE_NAMES = ['NONE', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT', 'TIME_WAIT', 'CLOSE', 'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'SYNACK'];

/** seconds, indexed by DPVS state */
export const DPVS_TCP_TIMEOUTS = [2, 90, 3, 30, 7, 7, 3, 7, 7, 120, 30];

export const D_DIR_INPUT = 0;
export const D_DIR_OUTPUT = 4;
export const D_DIR_INPUT_ONLY = 8;

const [, sES, sSS, sSR, sFW, sTW, sCL, sCW, sLA, sLI] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] as const;

// prettier-ignore
export const DPVS_TCP_TABLE = Uint8Array.from([
  /* INPUT      sNO  sES  sSS  sSR  sFW  sTW  sCL  sCW  sLA  sLI  sSA */
  /* syn */     sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR,
  /* fin */     sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW,
  /* ack */     sCL, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES,
  /* rst */     sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR,
  /* OUTPUT */
  /* syn */     sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR,
  /* fin */     sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW,
  /* ack */     sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES,
  /* rst */     sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL,
  /* INPUT-ONLY */
  /* syn */     sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR,
  /* fin */     sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW,
  /* ack */     sCL, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES,
  /* rst */     sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL,
]);

/** DPVS tcp_state_idx(): RST > SYN > FIN > ACK; -1 for none of them */
export function dpvsEvent(flags: number): number {
  if (flags & 0x04) return 3;
  if (flags & 0x02) return 0;
  if (flags & 0x01) return 1;
  if (flags & 0x10) return 2;
  return -1;
}

/** Next DPVS state for a segment with `flags` in table `off` (D_DIR_*) from `state`. */
export function dpvsNext(off: number, flags: number, state: number): number {
  const ev = dpvsEvent(flags);
  return ev < 0 ? D_CLOSE : DPVS_TCP_TABLE[(off + ev) * D_NSTATES + state]!;
}

/* ---------------- netfilter ---------------- */

export const N_NONE = 0;
export const N_SYN_SENT = 1;
export const N_SYN_RECV = 2;
export const N_ESTABLISHED = 3;
export const N_FIN_WAIT = 4;
export const N_CLOSE_WAIT = 5;
export const N_LAST_ACK = 6;
export const N_TIME_WAIT = 7;
export const N_CLOSE = 8;
export const N_SYN_SENT2 = 9;
export const N_NSTATES = 10;
/** table values beyond the states */
export const N_INVALID = 10;
export const N_IGNORE = 11;
/** extra timeout slots */
export const N_RETRANS = 10;
export const N_UNACK = 11;

/** as `conntrack -L` prints them */
export const NF_TCP_STATE_NAMES = ['NONE', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK', 'TIME_WAIT', 'CLOSE', 'SYN_SENT2'];

/** seconds: states, then RETRANS and UNACK */
export const NF_TCP_TIMEOUTS = [0, 120, 60, 432000, 120, 60, 30, 120, 10, 120, 300, 300];

export const NI_SYN = 0;
export const NI_SYNACK = 1;
export const NI_FIN = 2;
export const NI_ACK = 3;
export const NI_RST = 4;
export const NI_NONE = 5;

const [, nSS, nSR, nES, nFW, nCW, nLA, nTW, nCL, nS2, nIV, nIG] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] as const;

// prettier-ignore
export const NF_TCP_TABLE = Uint8Array.from([
  /* ORIGINAL   sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2 */
  /* syn */     nSS, nSS, nIG, nIG, nIG, nIG, nIG, nSS, nSS, nS2,
  /* synack */  nIV, nIV, nSR, nIV, nIV, nIV, nIV, nIV, nIV, nSR,
  /* fin */     nIV, nIV, nFW, nFW, nLA, nLA, nLA, nTW, nCL, nIV,
  /* ack */     nES, nIV, nES, nES, nCW, nCW, nTW, nTW, nCL, nIV,
  /* rst */     nIV, nCL, nCL, nCL, nCL, nCL, nCL, nCL, nCL, nCL,
  /* none */    nIV, nIV, nIV, nIV, nIV, nIV, nIV, nIV, nIV, nIV,
  /* REPLY */
  /* syn */     nIV, nS2, nIV, nIV, nIV, nIV, nIV, nSS, nIV, nS2,
  /* synack */  nIV, nSR, nIG, nIG, nIG, nIG, nIG, nIG, nIG, nSR,
  /* fin */     nIV, nIV, nFW, nFW, nLA, nLA, nLA, nTW, nCL, nIV,
  /* ack */     nIV, nIG, nSR, nES, nCW, nCW, nTW, nTW, nCL, nIG,
  /* rst */     nIV, nCL, nCL, nCL, nCL, nCL, nCL, nCL, nCL, nCL,
  /* none */    nIV, nIV, nIV, nIV, nIV, nIV, nIV, nIV, nIV, nIV,
]);

/** get_conntrack_index(): RST, then SYN (SYN/ACK when ACK too), FIN, ACK, none */
export function nfIndex(flags: number): number {
  if (flags & 0x04) return NI_RST;
  if (flags & 0x02) return flags & 0x10 ? NI_SYNACK : NI_SYN;
  if (flags & 0x01) return NI_FIN;
  if (flags & 0x10) return NI_ACK;
  return NI_NONE;
}

/** table lookup: dir 0 = ORIGINAL, 1 = REPLY */
export function nfNext(dir: number, index: number, state: number): number {
  return NF_TCP_TABLE[(dir * 6 + index) * N_NSTATES + state]!;
}
