/**
 * The connection tracker's per-connection status bits, creation flags, step results and counter indexes:
 * shared by the tracker and the state machines of src/proto (one module, so neither imports the other's code).
 */

/* status bits (per connection) */
export const S_ASSURED = 0x01;
export const S_SEEN_REPLY = 0x02;
export const S_CLOSE_INIT0 = 0x04; // FIN_WAIT entered by the original direction
export const S_CLOSE_INIT1 = 0x08;
export const S_SIMOPEN = 0x10;
export const S_CHALLENGE = 0x20; // IP_CT_EXP_CHALLENGE_ACK
export const S_NO_LAST = 0x80; // tcp last_index not set yet

/* flags set by whoever creates a connection (the load balancer) */
/** replies bypass this box (DR, tunnel): DPVS's INPUT-ONLY TCP table */
export const F_INPUT_ONLY = 0x01;
/** ask `timeoutHook` for the timeout of ESTABLISHED TCP and of UDP (a per-connection policy: conn_timeout) */
export const F_TIMEOUT_HOOK = 0x02;

/** step() results */
export const STEP_OK = 0;
export const STEP_INVALID = 1;
/** the packet closed the connection and opens a new one on the same tuple (the old one is destroyed) */
export const STEP_REOPEN = 2;

export const COUNTER_NAMES = [
  'searched',
  'found',
  'new',
  'insert',
  'invalid',
  'ignore',
  'insert_failed',
  'drop',
  'early_drop',
  'icmp_error',
  'related',
  'expired',
  'killed',
  'reopened',
  'untracked_decode',
  'untracked_checksum',
  'untracked_fragment',
  'untracked_proto',
  'untracked_icmp',
  'no_conn',
] as const;
export type CounterName = (typeof COUNTER_NAMES)[number];

/* counter indexes (plain constants: no object lookup on the packet path) */
export const C_SEARCHED = 0;
export const C_FOUND = 1;
export const C_NEW = 2;
export const C_INSERT = 3;
export const C_INVALID = 4;
export const C_IGNORE = 5;
export const C_INSERT_FAILED = 6;
export const C_DROP = 7;
export const C_EARLY_DROP = 8;
export const C_ICMP_ERROR = 9;
export const C_RELATED = 10;
export const C_EXPIRED = 11;
export const C_KILLED = 12;
export const C_REOPENED = 13;
export const C_UNTRACKED_DECODE = 14;
export const C_UNTRACKED_CHECKSUM = 15;
export const C_UNTRACKED_FRAGMENT = 16;
export const C_UNTRACKED_PROTO = 17;
export const C_UNTRACKED_ICMP = 18;
export const C_NO_CONN = 19;
