/**
 * Control socket protocol, version 1: JSON lines over a Unix stream socket. A request is
 *   {"v":1,"id":<any>,"cmd":"<name>", ...arguments}
 * and every request gets exactly one reply line
 *   {"v":1,"id":<same>,"ok":true,"result":...}   or   {"v":1,"id":<same>,"ok":false,"error":{"code":"...","message":"..."}}
 * Error codes are stable: BAD_JSON, BAD_REQUEST, BAD_VERSION, UNKNOWN_CMD, NOT_FOUND, EXISTS, INVALID, TOO_LONG,
 * INTERNAL (the daemon failed to answer; it keeps running).
 */
export const CTL_VERSION = 1;
export const MAX_LINE = 1 << 20;

export type ErrorCode = 'BAD_JSON' | 'BAD_REQUEST' | 'BAD_VERSION' | 'UNKNOWN_CMD' | 'NOT_FOUND' | 'EXISTS' | 'INVALID' | 'TOO_LONG' | 'INTERNAL';

export class CtlError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface Request {
  v: number;
  id?: unknown;
  cmd: string;
  [k: string]: unknown;
}

export type Reply = { v: 1; id: unknown; ok: true; result: unknown } | { v: 1; id: unknown; ok: false; error: { code: ErrorCode; message: string } };

/** a service named as in ipvsadm: proto and VIP:PORT */
export interface ServiceRef {
  proto: 'tcp' | 'udp';
  vip: string;
  port: number;
}

export const DEFAULT_SOCKET = '/run/tsvs/tsvs.sock';
