/*
 * tsvs's own native module (N-API, C): what Node cannot do by itself. Optional and loaded lazily
 * (src/native.ts); built by `npm run build` (scripts/build-native.mjs) with the system's C compiler against
 * this Node's headers. Replay never needs it.
 *
 *   tunOpen(name)             -> { fd, name }   a TUN device (IFF_TUN | IFF_NO_PI), its fd non-blocking
 *   pollStart(fd, cb, batch)  -> handle         libuv watches fd; when readable, up to `batch` packets are
 *                                               read and cb(packets: Buffer[]) is called once per batch
 *   pollStop(handle)                            stop watching (the fd stays open: the caller closes it)
 *
 * The live data path's batched I/O (issue 19):
 *   ringOpen(ifname, prog, blockSize, blockCount, desc, frameSize = 2048, coalesceUs = 0)
 *       -> { handle, ring: ArrayBuffer, arptype }   an AF_PACKET socket with a TPACKET_V2 receive ring on
 *          ifname, the classic BPF program `prog` (Int32Array, 4 words per instruction, as tcpdump -ddd
 *          prints) attached before it is bound, outgoing packets ignored; `ring` is the mapped ring itself;
 *          while busy, an empty ring is given coalesceUs to fill before the socket is waited on again
 *   ringStart(handle, cb)   libuv watches the socket; the frames the kernel has filled are described in
 *          `desc` (Int32Array: offset in ring, captured length, wire length per packet) and cb(n) is called
 *          once for them (per `desc` full); they go back to the kernel when cb returns: the engine reads and
 *          rewrites the frames in place, without a copy
 *   ringStats(handle) -> { packets, drops }   cumulative (packets handed to JavaScript; the kernel's drops)
 *   ringClose(handle)
 *   txOpen(threads = 0) -> handle   raw IPv4 and IPv6 sockets (IPPROTO_RAW: the IP header is the packet's own)
 *          and a packet socket for L2 frames; `threads` transmit threads (0: sends on the caller's thread)
 *   txSend(handle, arena, desc, n) -> [sent, failed, lastErrno]   n packets from `arena` (Buffer), desc per
 *          packet: offset, length, kind (4, 6: IP packets routed by the kernel to their destination; 2: an
 *          Ethernet frame on interface index desc[3]), ifindex; consecutive packets of one kind leave in one
 *          sendmmsg. With transmit threads the packets are copied for the thread of their destination and
 *          the counts returned are only those known at once (bad descriptors); the threads' come from
 *   txCollect(handle) -> [sent, failed, lastErrno, queued]   sent and failed by the threads since the last
 *          call, and the packets still queued on them
 *   txDrain(handle, ms) -> boolean   wait up to ms for the threads to send all they were given
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/if_packet.h>
#include <linux/filter.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <uv.h>

#define MAX_PACKET 65536

static napi_value throw_errno(napi_env env, const char *what, int e) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(e));
  napi_throw_error(env, NULL, msg);
  return NULL;
}


/* call cb(arg) from a libuv callback (as an asynchronous operation of `ctx`); an exception it throws goes to
 * process 'uncaughtException', as one thrown by any other callback would */
static void call_js(napi_env env, napi_ref cbref, napi_async_context ctx, napi_value arg) {
  napi_value cb, recv, result;
  napi_get_reference_value(env, cbref, &cb);
  napi_get_global(env, &recv);
  if (napi_make_callback(env, ctx, recv, cb, 1, &arg, &result) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
  }
}


/*
 * libuv watches `fd` for reading and calls `on` with poll->data = `data`; `cb` is kept (a reference) and
 * called through call_js as an asynchronous operation named `name`. 0, or libuv's error with everything
 * undone: a handle that was initialised is closed with `closed` (which may free `data`; *closing says so).
 */
static int watch_fd(napi_env env, uv_poll_t *poll, void *data, int fd, napi_value cb, napi_ref *cbref, napi_async_context *ctx, const char *name, uv_poll_cb on,
                    uv_close_cb closed, int *closing) {
  napi_value n;
  uv_loop_t *loop;
  napi_create_reference(env, cb, 1, cbref);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &n);
  napi_async_init(env, NULL, n, ctx);
  napi_get_uv_event_loop(env, &loop);
  int e = uv_poll_init(loop, poll, fd);
  if (e != 0) {
    napi_delete_reference(env, *cbref);
    napi_async_destroy(env, *ctx);
    return e;
  }
  poll->data = data;
  e = uv_poll_start(poll, UV_READABLE, on);
  if (e != 0) {
    napi_delete_reference(env, *cbref);
    napi_async_destroy(env, *ctx);
    *closing = 1;
    uv_close((uv_handle_t *)poll, closed);
  }
  return e;
}

static napi_value tun_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char name[IFNAMSIZ];
  size_t len = 0;
  memset(name, 0, sizeof name);
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "tunOpen(name: string)");
    return NULL;
  }
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, "open /dev/net/tun", errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  memcpy(ifr.ifr_name, name, len < IFNAMSIZ - 1 ? len : IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "ioctl TUNSETIFF", e);
  }
  napi_value obj, vfd, vname;
  napi_create_object(env, &obj);
  napi_create_int32(env, fd, &vfd);
  napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &vname);
  napi_set_named_property(env, obj, "fd", vfd);
  napi_set_named_property(env, obj, "name", vname);
  return obj;
}

/*
 * The first member of a struct a JavaScript handle names (a poller, a ring): how many hold it — the handle
 * (until it is collected) and libuv's poll handle (until it is closed) — and whether it is closed. The last
 * holder frees it, so a handle used after close finds `closed`, never freed memory. (A handle collected while
 * its struct is still open lets go of nothing: nothing could close it any more.)
 */
typedef struct {
  int refs;
  int closed;
} hold_t;

static void hold_release(hold_t *h) {
  if (--h->refs == 0) free(h);
}

static void hold_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  hold_t *h = (hold_t *)data;
  if (h->closed) hold_release(h);
}

typedef struct {
  hold_t hold;
  uv_poll_t poll;
  napi_env env;
  napi_ref cb;
  napi_async_context ctx;
  int fd;
  uint32_t batch;
  unsigned char buf[MAX_PACKET];
} poller_t;

static void on_readable(uv_poll_t *h, int status, int events) {
  poller_t *p = (poller_t *)h->data;
  (void)events;
  if (p->hold.closed || status < 0) return;
  napi_env env = p->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value arr;
  napi_create_array(env, &arr);
  uint32_t n = 0;
  while (n < p->batch) {
    ssize_t r = read(p->fd, p->buf, MAX_PACKET);
    if (r <= 0) break;
    napi_value b;
    void *data;
    if (napi_create_buffer_copy(env, (size_t)r, p->buf, &data, &b) != napi_ok) break;
    napi_set_element(env, arr, n++, b);
  }
  if (n > 0) call_js(env, p->cb, p->ctx, arr);
  napi_close_handle_scope(env, scope);
}

static void on_closed(uv_handle_t *h) { hold_release(&((poller_t *)h->data)->hold); }

static napi_value poll_start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd = -1;
  uint32_t batch = 64;
  napi_valuetype t;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, "pollStart(fd: number, cb: (packets: Buffer[]) => void, batch?: number)");
    return NULL;
  }
  if (argc >= 3) napi_get_value_uint32(env, argv[2], &batch);
  if (batch < 1) batch = 1;
  poller_t *p = (poller_t *)calloc(1, sizeof(poller_t));
  if (!p) return throw_errno(env, "pollStart", ENOMEM);
  p->env = env;
  p->fd = fd;
  p->batch = batch;
  p->hold.refs = 1; /* libuv's */
  int closing = 0;
  int e = watch_fd(env, &p->poll, p, fd, argv[1], &p->cb, &p->ctx, "tsvs.poll", on_readable, on_closed, &closing);
  if (e != 0) {
    if (!closing) free(p); /* (else on_closed frees it) */
    napi_throw_error(env, NULL, uv_strerror(e));
    return NULL;
  }
  napi_value ext;
  p->hold.refs++; /* the handle's */
  napi_create_external(env, p, hold_finalize, NULL, &ext);
  return ext;
}

static napi_value poll_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *ptr = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_external(env, argv[0], &ptr) != napi_ok || !ptr) {
    napi_throw_type_error(env, NULL, "pollStop(handle)");
    return NULL;
  }
  poller_t *p = (poller_t *)ptr;
  if (!p->hold.closed) {
    p->hold.closed = 1;
    uv_poll_stop(&p->poll);
    napi_delete_reference(env, p->cb);
    napi_async_destroy(env, p->ctx);
    uv_close((uv_handle_t *)&p->poll, on_closed);
  }
  return NULL;
}


/* ---------------- receive: a TPACKET_V2 ring ---------------- */

typedef struct {
  hold_t hold;
  uv_poll_t poll;
  napi_env env;
  napi_ref cb;
  napi_ref desc_ref;
  napi_async_context ctx;
  int fd;
  int polling;
  uint8_t *map;
  size_t map_len;
  uint32_t block_size, block_nr, cur;
  /* TPACKET_V2: frames, each with its own status */
  uint32_t frame_size, frame_nr;
  /* receive coalescing while busy (µs; 0: none), and the packets the last wake-up handed over */
  uint32_t coalesce_us, last_wake;
  int32_t *desc;
  uint32_t desc_cap;
  uint64_t packets, drops;
  /* the device's ARPHRD_* type: on Ethernet, a VLAN tag the kernel took off is put back */
  int arptype;
  /* closes the ring when its environment (a worker thread) ends while it is open: see ring_cleanup */
  napi_async_cleanup_hook_handle cleanup;
} ring_t;

static void ring_closed(uv_handle_t *h);
static void ring_cleanup(napi_async_cleanup_hook_handle h, void *arg);

/* a classic BPF program's words (4 per instruction, as an Int32Array holds them) as the kernel takes them */
static struct sock_filter *bpf_copy(const int32_t *w, size_t n) {
  struct sock_filter *f = (struct sock_filter *)calloc(n, sizeof *f);
  if (!f) return NULL;
  for (size_t i = 0; i < n; i++) {
    f[i].code = (uint16_t)w[4 * i];
    f[i].jt = (uint8_t)w[4 * i + 1];
    f[i].jf = (uint8_t)w[4 * i + 2];
    f[i].k = (uint32_t)w[4 * i + 3];
  }
  return f;
}

static napi_value ring_open(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  char ifname[IFNAMSIZ];
  size_t len = 0;
  uint32_t block_size = 0, block_nr = 0;
  memset(ifname, 0, sizeof ifname);
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_typedarray_type pt, dt;
  size_t plen = 0, dlen = 0;
  /* a fanout group to join (PACKET_FANOUT_CBPF): its id and the program that picks each packet's member */
  int64_t fanout_id = -1;
  const int32_t *fanout_w = NULL;
  size_t fanout_n = 0;
  if (argc >= 9) {
    napi_valuetype ft;
    napi_typeof(env, argv[7], &ft);
    if (ft != napi_undefined && ft != napi_null) {
      napi_typedarray_type fpt;
      size_t flen = 0;
      void *fdata = NULL;
      bool is = false;
      napi_is_typedarray(env, argv[8], &is);
      if (napi_get_value_int64(env, argv[7], &fanout_id) != napi_ok || fanout_id < 0 || fanout_id > 0xffff || !is ||
          napi_get_typedarray_info(env, argv[8], &fpt, &flen, &fdata, NULL, NULL) != napi_ok || fpt != napi_int32_array || flen % 4 != 0 || flen == 0 || flen / 4 > 4096) {
        napi_throw_type_error(env, NULL, "ringOpen: a fanout group (0 to 65535) and its program (4 words per instruction, at most 4096)");
        return NULL;
      }
      fanout_w = (const int32_t *)fdata;
      fanout_n = flen / 4;
    }
  }
  void *pdata = NULL, *ddata = NULL;
  bool has_prog = false;
  if (argc < 5 || napi_get_value_string_utf8(env, argv[0], ifname, sizeof ifname, &len) != napi_ok || napi_get_value_uint32(env, argv[2], &block_size) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &block_nr) != napi_ok || napi_get_typedarray_info(env, argv[4], &dt, &dlen, &ddata, NULL, NULL) != napi_ok || dt != napi_int32_array || dlen < 3) {
    napi_throw_type_error(env, NULL, "ringOpen(ifname, prog: Int32Array | null, blockSize, blockCount, desc: Int32Array)");
    return NULL;
  }
  napi_is_typedarray(env, argv[1], &has_prog);
  if (has_prog && (napi_get_typedarray_info(env, argv[1], &pt, &plen, &pdata, NULL, NULL) != napi_ok || pt != napi_int32_array || plen % 4 != 0 || plen == 0)) {
    napi_throw_type_error(env, NULL, "ringOpen: prog is 4 words per instruction");
    return NULL;
  }
  if (block_size < 4096 || (block_size & (block_size - 1)) != 0 || block_nr < 2) {
    napi_throw_range_error(env, NULL, "ringOpen: the block size is a power of two of at least 4096, and there are at least 2 blocks");
    return NULL;
  }
  unsigned ifindex = if_nametoindex(ifname);
  if (ifindex == 0) return throw_errno(env, ifname, errno);
  /* protocol 0: nothing is received until bind, after the filter is attached */
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket(AF_PACKET)", errno);
  const char *what = NULL;
  if (has_prog) {
    size_t n = plen / 4;
    struct sock_filter *f = bpf_copy((int32_t *)pdata, n);
    struct sock_fprog fp = {(unsigned short)n, f};
    int r = setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp);
    free(f);
    if (r < 0) what = "SO_ATTACH_FILTER";
  }
  int one = 1, ver = TPACKET_V2;
  /* (kernels before 4.20 have no PACKET_IGNORE_OUTGOING: the filter's "inbound" still holds) */
  setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
  if (!what && setsockopt(fd, SOL_PACKET, PACKET_VERSION, &ver, sizeof ver) < 0) what = "PACKET_VERSION";
  /* room before each frame for the 4 bytes of a VLAN tag the kernel took off (put back in ring_readable_v2,
   * as libpcap does: the engine sees the frame as it was on the wire) */
  unsigned reserve = 4;
  if (!what && setsockopt(fd, SOL_PACKET, PACKET_RESERVE, &reserve, sizeof reserve) < 0) what = "PACKET_RESERVE";
  /* frames as the caller asks (a power of two that holds the interface's largest frame and the ring's own
   * header: 2048 for an MTU of 1500; a longer packet is truncated), at most a block */
  uint32_t frame_size = 2048;
  if (argc >= 6) napi_get_value_uint32(env, argv[5], &frame_size);
  uint32_t coalesce_us = 0;
  if (argc >= 7) napi_get_value_uint32(env, argv[6], &coalesce_us);
  if (frame_size < 256 || (frame_size & (frame_size - 1)) != 0 || frame_size > block_size) {
    close(fd);
    napi_throw_range_error(env, NULL, "ringOpen: the frame size is a power of two from 256 to the block size");
    return NULL;
  }
  uint32_t frame_nr = (block_size / frame_size) * block_nr;
  struct tpacket_req req;
  memset(&req, 0, sizeof req);
  req.tp_block_size = block_size;
  req.tp_block_nr = block_nr;
  req.tp_frame_size = frame_size;
  req.tp_frame_nr = frame_nr;
  if (!what && setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) what = "PACKET_RX_RING";
  uint8_t *map = NULL;
  size_t map_len = (size_t)block_size * block_nr;
  if (!what) {
    map = (uint8_t *)mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (map == MAP_FAILED) {
      map = NULL;
      what = "mmap";
    }
  }
  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = (int)ifindex;
  if (!what && bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) what = "bind";
  if (!what && fanout_w) {
    /* join the group (every member the same type), then give it the program that picks each packet's member
     * (its return value modulo the members: af_packet.c fanout_demux_bpf) */
    int val = (int)(fanout_id & 0xffff) | (PACKET_FANOUT_CBPF << 16);
    if (setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &val, sizeof val) < 0) what = "PACKET_FANOUT";
    struct sock_filter *f = what ? NULL : bpf_copy(fanout_w, fanout_n);
    struct sock_fprog fp = {(unsigned short)fanout_n, f};
    if (!what && (!f || setsockopt(fd, SOL_PACKET, PACKET_FANOUT_DATA, &fp, sizeof fp) < 0)) what = "PACKET_FANOUT_DATA";
    free(f);
  }
  if (what) {
    int e = errno;
    if (map) munmap(map, map_len);
    close(fd);
    return throw_errno(env, what, e);
  }
  ring_t *r = (ring_t *)calloc(1, sizeof(ring_t));
  r->env = env;
  r->fd = fd;
  r->map = map;
  r->map_len = map_len;
  r->block_size = block_size;
  r->block_nr = block_nr;
  r->frame_size = frame_size;
  r->coalesce_us = coalesce_us > 100000 ? 100000 : coalesce_us;
  r->frame_nr = frame_nr;
  r->desc = (int32_t *)ddata;
  r->desc_cap = (uint32_t)(dlen / 3);
  r->hold.refs = 1;
  napi_add_async_cleanup_hook(env, ring_cleanup, r, &r->cleanup);
  napi_create_reference(env, argv[4], 1, &r->desc_ref);
  napi_value obj, ext, ab, arptype;
  napi_create_object(env, &obj);
  napi_create_external(env, r, hold_finalize, NULL, &ext);
  if (napi_create_external_arraybuffer(env, map, map_len, NULL, NULL, &ab) != napi_ok) {
    napi_delete_reference(env, r->desc_ref);
    munmap(map, map_len);
    close(fd);
    napi_remove_async_cleanup_hook(r->cleanup);
    r->hold.closed = 1; /* (the handle made above frees it when it is collected) */
    napi_throw_error(env, NULL, "ringOpen: this Node cannot wrap the ring in an ArrayBuffer");
    return NULL;
  }
  /* the device type (ARPHRD_*: 1 Ethernet, 772 loopback, 65534 none/TUN) says what the frames start with */
  char path[64];
  int at = -1;
  snprintf(path, sizeof path, "/sys/class/net/%s/type", ifname);
  FILE *ft = fopen(path, "r");
  if (ft) {
    if (fscanf(ft, "%d", &at) != 1) at = -1;
    fclose(ft);
  }
  r->arptype = at;
  napi_create_int32(env, at, &arptype);
  napi_set_named_property(env, obj, "handle", ext);
  napi_set_named_property(env, obj, "ring", ab);
  napi_set_named_property(env, obj, "arptype", arptype);
  return obj;
}

static ring_t *ring_arg(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "not a ring handle");
    return NULL;
  }
  ring_t *r = (ring_t *)p;
  if (r->hold.closed) {
    napi_throw_error(env, NULL, "the ring is closed");
    return NULL;
  }
  return r;
}

static void ring_call(ring_t *r, uint32_t n) {
  napi_value arg;
  napi_create_uint32(r->env, n, &arg);
  call_js(r->env, r->cb, r->ctx, arg);
}

/* calls into JavaScript per wake-up at most, so that timers and the control socket get their turn */
#define RING_CALLS_PER_WAKE 8

/*
 * The frames the kernel has filled, up to `desc` full per call into JavaScript, given back after each call.
 * (TPACKET_V2. V3, which hands over whole blocks, was tried: no faster in bench/live.sh, a block that is not
 * full waits up to its retire timeout (1 ms) — latency TCP feels — and in a test of a burst larger than a
 * two-block ring it stopped delivering after the kernel froze the queue.)
 */
/* a wake-up, or a call, that hands over at least this many packets means a busy ring */
#define RING_BUSY 4

static int ring_ready(ring_t *r) {
  struct tpacket2_hdr *ph = (struct tpacket2_hdr *)(r->map + (size_t)r->cur * r->frame_size);
  return (__atomic_load_n(&ph->tp_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) != 0;
}

/*
 * Receive coalescing (live.rx_coalesce_us), as a NIC's interrupt moderation or NAPI: while the ring is busy,
 * an empty ring after a call is given coalesce_us (asleep, not spinning) to fill before the thread goes back
 * to waiting on the socket. A thread waiting on the socket is woken by the kernel for every packet — on
 * another core an inter-processor interrupt, which in this VM cost more than a small packet's whole trip
 * through tsvs (perf: tpacket_rcv -> sock_def_readable was ~9% of both cores under a 64-byte UDP flood).
 * A light load (a wake-up that finds fewer than RING_BUSY packets, after one that did too) never waits.
 */
static int ring_more(ring_t *r, uint32_t so_far) {
  if (ring_ready(r)) return 1;
  if (r->coalesce_us == 0 || (so_far < RING_BUSY && r->last_wake < RING_BUSY)) return 0;
  usleep(r->coalesce_us);
  return ring_ready(r);
}

static void ring_readable_v2(ring_t *r) {
  uint32_t so_far = 0;
  for (int call = 0; call < RING_CALLS_PER_WAKE && !r->hold.closed; call++) {
    uint32_t n = 0, start = r->cur;
    if (call > 0 && !ring_more(r, so_far)) break;
    /* (never past a whole ring: the frames read are the kernel's again only once released) */
    while (n < r->desc_cap && n < r->frame_nr) {
      struct tpacket2_hdr *ph = (struct tpacket2_hdr *)(r->map + (size_t)r->cur * r->frame_size);
      if (!(__atomic_load_n(&ph->tp_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) break;
      size_t at = (size_t)r->cur * r->frame_size + ph->tp_mac;
      uint32_t snap = ph->tp_snaplen, len = ph->tp_len;
      if (r->arptype == 1 && ((ph->tp_status & TP_STATUS_VLAN_VALID) || ph->tp_vlan_tci != 0) && snap >= 12) {
        /* the tag the kernel took off (skb_vlan_untag) back between the addresses and the type */
        uint8_t *mac = r->map + at;
        uint16_t tpid = (ph->tp_status & TP_STATUS_VLAN_TPID_VALID) && ph->tp_vlan_tpid ? ph->tp_vlan_tpid : 0x8100;
        memmove(mac - 4, mac, 12);
        mac[8] = (uint8_t)(tpid >> 8);
        mac[9] = (uint8_t)tpid;
        mac[10] = (uint8_t)(ph->tp_vlan_tci >> 8);
        mac[11] = (uint8_t)ph->tp_vlan_tci;
        at -= 4;
        snap += 4;
        len += 4;
      }
      r->desc[3 * n] = (int32_t)at;
      r->desc[3 * n + 1] = (int32_t)snap;
      r->desc[3 * n + 2] = (int32_t)len;
      n++;
      r->cur = (r->cur + 1) % r->frame_nr;
    }
    if (n == 0) break;
    ring_call(r, n);
    if (r->hold.closed) break;
    for (uint32_t k = 0; k < n; k++) {
      struct tpacket2_hdr *ph = (struct tpacket2_hdr *)(r->map + (size_t)((start + k) % r->frame_nr) * r->frame_size);
      __atomic_store_n(&ph->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    }
    r->packets += n;
    so_far += n;
  }
  r->last_wake = so_far;
}

static void ring_readable(uv_poll_t *h, int status, int events) {
  ring_t *r = (ring_t *)h->data;
  (void)events;
  if (r->hold.closed || status < 0) return;
  napi_handle_scope scope;
  napi_open_handle_scope(r->env, &scope);
  ring_readable_v2(r);
  napi_close_handle_scope(r->env, scope);
}

static void ring_keep(uv_handle_t *h) { (void)h; }

static napi_value ring_start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_valuetype t;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "ringStart(handle, cb)");
    return NULL;
  }
  ring_t *r = ring_arg(env, argv[0]);
  if (!r) return NULL;
  if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function || r->polling) {
    napi_throw_type_error(env, NULL, "ringStart(handle, cb): once, with a function");
    return NULL;
  }
  int closing = 0;
  /* (on failure the ring stays: ringClose still closes its socket and mapping) */
  int e = watch_fd(env, &r->poll, r, r->fd, argv[1], &r->cb, &r->ctx, "tsvs.ring", ring_readable, ring_keep, &closing);
  if (e != 0) {
    napi_throw_error(env, NULL, uv_strerror(e));
    return NULL;
  }
  r->polling = 1;
  r->hold.refs++;
  return NULL;
}

static void ring_read_stats(ring_t *r) {
  struct tpacket_stats st;
  socklen_t sl = sizeof st;
  memset(&st, 0, sizeof st);
  if (getsockopt(r->fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl) == 0) {
    /* (tp_packets counts the drops too; reading resets them) */
    r->drops += st.tp_drops;
  }
}

static napi_value ring_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) return NULL;
  ring_t *r = ring_arg(env, argv[0]);
  if (!r) return NULL;
  ring_read_stats(r);
  napi_value obj, v;
  napi_create_object(env, &obj);
  napi_create_double(env, (double)r->packets, &v);
  napi_set_named_property(env, obj, "packets", v);
  napi_create_double(env, (double)r->drops, &v);
  napi_set_named_property(env, obj, "drops", v);
  return obj;
}

/* ringSetProgram(handle, which, prog): replace the socket's filter (which 0: SO_ATTACH_FILTER replaces the one
 * attached) or its fanout group's program (which 1: PACKET_FANOUT_DATA, for every member) while the ring runs:
 * live workers keep their places in the group (a member's index is its order of joining) across reloads */
static napi_value ring_set_program(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t which = 0;
  napi_typedarray_type pt;
  size_t plen = 0;
  void *pdata = NULL;
  bool is = false;
  if (argc >= 3) napi_is_typedarray(env, argv[2], &is);
  if (argc < 3 || napi_get_value_uint32(env, argv[1], &which) != napi_ok || which > 1 || !is ||
      napi_get_typedarray_info(env, argv[2], &pt, &plen, &pdata, NULL, NULL) != napi_ok || pt != napi_int32_array || plen % 4 != 0 || plen == 0 || plen / 4 > 4096) {
    napi_throw_type_error(env, NULL, "ringSetProgram(handle, which: 0 filter | 1 fanout, prog: Int32Array of 4 words per instruction)");
    return NULL;
  }
  ring_t *r = ring_arg(env, argv[0]);
  if (!r) return NULL;
  size_t n = plen / 4;
  struct sock_filter *f = bpf_copy((const int32_t *)pdata, n);
  if (!f) return throw_errno(env, "ringSetProgram", ENOMEM);
  struct sock_fprog fp = {(unsigned short)n, f};
  int rc = which == 0 ? setsockopt(r->fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp) : setsockopt(r->fd, SOL_PACKET, PACKET_FANOUT_DATA, &fp, sizeof fp);
  int e = errno;
  free(f);
  if (rc < 0) return throw_errno(env, which == 0 ? "SO_ATTACH_FILTER" : "PACKET_FANOUT_DATA", e);
  return NULL;
}

static void ring_closed(uv_handle_t *h) {
  ring_t *r = (ring_t *)h->data;
  close(r->fd);
  hold_release(&r->hold);
}

/* the environment's end waits for this: the poll handle closed, the socket with it */
static void ring_cleanup_closed(uv_handle_t *h) {
  ring_t *r = (ring_t *)h->data;
  napi_async_cleanup_hook_handle c = r->cleanup;
  ring_closed(h);
  napi_remove_async_cleanup_hook(c);
}

/*
 * The ring's environment ends (a worker thread that exits or is terminated) with the ring open: close it
 * here. Node refuses to end a thread whose loop still has a handle (uv_loop_close: the whole process
 * aborts), and the socket would stay in its fanout group, taking its share of the packets for nobody.
 */
static void ring_cleanup(napi_async_cleanup_hook_handle c, void *arg) {
  ring_t *r = (ring_t *)arg;
  r->hold.closed = 1;
  munmap(r->map, r->map_len);
  if (r->polling) {
    uv_poll_stop(&r->poll);
    uv_close((uv_handle_t *)&r->poll, ring_cleanup_closed);
  } else {
    close(r->fd);
    napi_remove_async_cleanup_hook(c);
  }
}

static napi_value ring_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *p = NULL;
  if (argc < 1 || napi_get_value_external(env, argv[0], &p) != napi_ok || !p) return NULL;
  ring_t *r = (ring_t *)p;
  if (r->hold.closed) return NULL;
  r->hold.closed = 1;
  napi_remove_async_cleanup_hook(r->cleanup);
  munmap(r->map, r->map_len);
  napi_delete_reference(env, r->desc_ref);
  if (r->polling) {
    uv_poll_stop(&r->poll);
    napi_delete_reference(env, r->cb);
    napi_async_destroy(env, r->ctx);
    uv_close((uv_handle_t *)&r->poll, ring_closed);
  } else {
    close(r->fd);
  }
  return NULL;
}

/* ---------------- transmit: sendmmsg, on the caller's thread or on transmit threads ---------------- */

/*
 * A packet sent on a raw socket is carried through the kernel's whole path in the sender's own context: the
 * LB's routing and output, and, on a veth or a bridge, the receiving side's softirq too (a namespace's server
 * and its TCP, whose ACKs come back through the LB). In bench/live.sh that is ~95% of the capture thread's
 * time (perf: __sys_sendmmsg -> ... -> process_backlog). With transmit threads the capture thread only copies
 * a batch's packets into a job for the thread that owns their destination (a hash of the destination
 * address, so one destination's packets keep their order) and goes back to its ring; the threads' sends —
 * and the kernel's work they carry — run on the other cores.
 */

#define TX_BATCH 256
#define TX_THREADS_MAX 16
/* bytes queued for one thread beyond which the caller waits for it (the ring holds what arrives meanwhile) */
#define TXQ_BYTES (8 << 20)

typedef struct txjob {
  struct txjob *next;
  uint32_t n;
  size_t len;
  int32_t *d;
  uint8_t *data;
} txjob_t;

struct tx;
typedef struct {
  struct tx *t;
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t work, room;
  txjob_t *head, *tail;
  size_t bytes;
  int busy, stop;
  /* this batch's packets for the thread: count and bytes (the caller's scratch) */
  uint32_t cn;
  size_t cb;
  txjob_t *cj;
} txq_t;

typedef struct tx {
  int fd4, fd6, fdl2;
  int nq;
  txq_t q[TX_THREADS_MAX];
  /* what the threads sent and failed since the last txCollect, and the last error; packets queued on them */
  uint32_t sent, failed;
  int last;
  uint32_t queued;
  /* the caller's scratch: each packet's thread, or PICK_BAD / PICK_NOFD (grown as batches need) */
  uint8_t *pick;
  uint32_t pick_cap;
} tx_t;

#define PICK_BAD 0xff
#define PICK_NOFD 0xfe

typedef union {
  struct sockaddr_in in4;
  struct sockaddr_in6 in6;
  struct sockaddr_ll ll;
} txaddr_t;

static int tx_fd(tx_t *t, int kind) { return kind == 4 ? t->fd4 : kind == 6 ? t->fd6 : kind == 2 ? t->fdl2 : -1; }

/* a packet's descriptor is usable: inside the arena and long enough for its kind */
static int tx_ok(int kind, int32_t off, int32_t len, size_t alen) {
  return off >= 0 && len > 0 && (size_t)off + (size_t)len <= alen && !(kind == 4 && len < 20) && !(kind == 6 && len < 40) && !(kind == 2 && len < 14);
}

/* n packets of `arena` (descriptors d: offset, length, kind, ifindex), consecutive ones of a kind in one sendmmsg */
static void tx_run(tx_t *t, uint8_t *arena, size_t alen, const int32_t *d, uint32_t n, uint32_t *sentp, uint32_t *failedp, int *lastp) {
  struct mmsghdr msgs[TX_BATCH];
  struct iovec iov[TX_BATCH];
  txaddr_t addr[TX_BATCH];
  uint32_t sent = 0, failed = 0;
  int last = 0;
  uint32_t i = 0;
  while (i < n) {
    int kind = d[4 * i + 2];
    int fd = tx_fd(t, kind);
    /* a run of packets of one kind, each checked against the arena */
    uint32_t m = 0;
    int bad = 0;
    while (i + m < n && m < TX_BATCH && d[4 * (i + m) + 2] == kind) {
      uint32_t k = i + m;
      int32_t off = d[4 * k], len = d[4 * k + 1];
      if (!tx_ok(kind, off, len, alen)) {
        bad = 1;
        break;
      }
      uint8_t *p = arena + off;
      memset(&msgs[m], 0, sizeof msgs[m]);
      memset(&addr[m], 0, sizeof addr[m]);
      iov[m].iov_base = p;
      iov[m].iov_len = (size_t)len;
      msgs[m].msg_hdr.msg_iov = &iov[m];
      msgs[m].msg_hdr.msg_iovlen = 1;
      msgs[m].msg_hdr.msg_name = &addr[m];
      if (kind == 4) {
        addr[m].in4.sin_family = AF_INET;
        memcpy(&addr[m].in4.sin_addr, p + 16, 4);
        msgs[m].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
      } else if (kind == 6) {
        addr[m].in6.sin6_family = AF_INET6;
        memcpy(&addr[m].in6.sin6_addr, p + 24, 16);
        msgs[m].msg_hdr.msg_namelen = sizeof(struct sockaddr_in6);
      } else {
        addr[m].ll.sll_family = AF_PACKET;
        addr[m].ll.sll_ifindex = d[4 * k + 3];
        addr[m].ll.sll_halen = 6;
        memcpy(addr[m].ll.sll_addr, p, 6);
        msgs[m].msg_hdr.msg_namelen = sizeof(struct sockaddr_ll);
      }
      m++;
    }
    if (m == 0 && bad) {
      /* a descriptor outside the arena or too short: that packet fails */
      failed++;
      last = EINVAL;
      i++;
      continue;
    }
    if (fd < 0) {
      /* an unknown kind, or no socket for it (no IPv6 here): the run fails */
      failed += m;
      last = EAFNOSUPPORT;
      i += m;
      continue;
    }
    uint32_t done = 0;
    while (done < m) {
      int r = sendmmsg(fd, msgs + done, m - done, 0);
      if (r > 0) {
        done += (uint32_t)r;
        sent += (uint32_t)r;
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      /* EAGAIN (the socket's buffer is full) or an error for the next packet: it fails, the rest go on */
      last = r < 0 ? errno : EIO;
      failed++;
      done++;
    }
    i += m;
  }
  *sentp += sent;
  *failedp += failed;
  if (last) *lastp = last;
}

static void *tx_thread(void *arg) {
  txq_t *q = (txq_t *)arg;
  tx_t *t = q->t;
  pthread_mutex_lock(&q->mu);
  for (;;) {
    while (!q->head && !q->stop) pthread_cond_wait(&q->work, &q->mu);
    if (!q->head) break;
    /* every job queued so far, in order */
    txjob_t *j = q->head;
    q->head = q->tail = NULL;
    q->busy = 1;
    pthread_mutex_unlock(&q->mu);
    size_t freed = 0;
    while (j) {
      uint32_t sent = 0, failed = 0;
      int last = 0;
      tx_run(t, j->data, j->len, j->d, j->n, &sent, &failed, &last);
      __atomic_add_fetch(&t->sent, sent, __ATOMIC_RELAXED);
      if (failed) {
        __atomic_add_fetch(&t->failed, failed, __ATOMIC_RELAXED);
        __atomic_store_n(&t->last, last, __ATOMIC_RELAXED);
      }
      __atomic_sub_fetch(&t->queued, j->n, __ATOMIC_RELAXED);
      txjob_t *next = j->next;
      freed += j->len;
      free(j);
      j = next;
    }
    pthread_mutex_lock(&q->mu);
    q->busy = 0;
    q->bytes -= freed;
    pthread_cond_broadcast(&q->room);
  }
  pthread_mutex_unlock(&q->mu);
  return NULL;
}

static napi_value tx_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint32_t threads = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= 1) {
    napi_valuetype vt;
    napi_typeof(env, argv[0], &vt);
    if (vt != napi_undefined && (napi_get_value_uint32(env, argv[0], &threads) != napi_ok || threads > TX_THREADS_MAX)) {
      napi_throw_range_error(env, NULL, "txOpen(threads): 0 to 16");
      return NULL;
    }
  }
  tx_t *t = (tx_t *)calloc(1, sizeof(tx_t));
  int big = 4 << 20;
  t->fd4 = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
  if (t->fd4 < 0) {
    int e = errno;
    free(t);
    return throw_errno(env, "socket(AF_INET, SOCK_RAW, IPPROTO_RAW)", e);
  }
  t->fd6 = socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
  t->fdl2 = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  setsockopt(t->fd4, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  if (t->fd6 >= 0) setsockopt(t->fd6, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  if (t->fdl2 >= 0) setsockopt(t->fdl2, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  for (uint32_t k = 0; k < threads; k++) {
    txq_t *q = &t->q[k];
    q->t = t;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->work, NULL);
    pthread_cond_init(&q->room, NULL);
    if (pthread_create(&q->th, NULL, tx_thread, q) != 0) break;
    t->nq++;
  }
  napi_value ext;
  napi_create_external(env, t, NULL, NULL, &ext);
  return ext;
}

/* the transmit thread for a packet: by its destination (IPv4, IPv6 address; a frame's destination MAC) */
static uint32_t tx_pick(const tx_t *t, int kind, const uint8_t *p) {
  uint32_t h = 2166136261u;
  int from = kind == 4 ? 16 : kind == 6 ? 24 : 0, len = kind == 4 ? 4 : kind == 6 ? 16 : 6;
  for (int k = 0; k < len; k++) h = (h ^ p[from + k]) * 16777619u;
  return (h ^ (h >> 16)) % (uint32_t)t->nq;
}

static napi_value tx_result(napi_env env, uint32_t sent, uint32_t failed, int last) {
  napi_value arr, v;
  napi_create_array_with_length(env, 3, &arr);
  napi_create_uint32(env, sent, &v);
  napi_set_element(env, arr, 0, v);
  napi_create_uint32(env, failed, &v);
  napi_set_element(env, arr, 1, v);
  napi_create_int32(env, last, &v);
  napi_set_element(env, arr, 2, v);
  return arr;
}

/* the transmit handle that is a call's first argument (its other arguments in argv, up to max), or NULL and a TypeError */
static tx_t *tx_call(napi_env env, napi_callback_info info, napi_value *argv, size_t max, const char *usage) {
  size_t argc = max;
  void *tp = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  for (size_t k = argc; k < max; k++) napi_get_undefined(env, &argv[k]);
  if (argc < 1 || napi_get_value_external(env, argv[0], &tp) != napi_ok || !tp) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  return (tx_t *)tp;
}

static napi_value tx_send(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  void *arena = NULL, *ddata = NULL;
  size_t alen = 0, dlen = 0;
  uint32_t n = 0;
  napi_typedarray_type dt;
  const char *usage = "txSend(handle, arena: Buffer, desc: Int32Array, n)";
  tx_t *t = tx_call(env, info, argv, 4, usage);
  if (!t) return NULL;
  if (napi_get_buffer_info(env, argv[1], &arena, &alen) != napi_ok || napi_get_typedarray_info(env, argv[2], &dt, &dlen, &ddata, NULL, NULL) != napi_ok || dt != napi_int32_array ||
      napi_get_value_uint32(env, argv[3], &n) != napi_ok || (size_t)n * 4 > dlen) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  int32_t *d = (int32_t *)ddata;
  uint32_t sent = 0, failed = 0;
  int last = 0;
  if (t->nq == 0) {
    tx_run(t, (uint8_t *)arena, alen, d, n, &sent, &failed, &last);
    return tx_result(env, sent, failed, last);
  }
  if (n > t->pick_cap) {
    uint8_t *p = (uint8_t *)realloc(t->pick, n);
    if (!p) {
      napi_throw_error(env, NULL, "txSend: out of memory");
      return NULL;
    }
    t->pick = p;
    t->pick_cap = n;
  }
  /* the transmit threads: each packet checked and its thread picked once, a job per thread, the packets copied */
  for (int k = 0; k < t->nq; k++) t->q[k].cn = 0, t->q[k].cb = 0, t->q[k].cj = NULL;
  for (uint32_t i = 0; i < n; i++) {
    int kind = d[4 * i + 2];
    if (!tx_ok(kind, d[4 * i], d[4 * i + 1], alen)) {
      t->pick[i] = PICK_BAD;
      continue;
    }
    if (tx_fd(t, kind) < 0) {
      t->pick[i] = PICK_NOFD;
      continue;
    }
    uint32_t k = tx_pick(t, kind, (uint8_t *)arena + d[4 * i]);
    t->pick[i] = (uint8_t)k;
    t->q[k].cn++;
    t->q[k].cb += (size_t)d[4 * i + 1];
  }
  for (int k = 0; k < t->nq; k++) {
    txq_t *q = &t->q[k];
    if (q->cn == 0) continue;
    size_t dbytes = (size_t)q->cn * 4 * sizeof(int32_t);
    txjob_t *j = (txjob_t *)malloc(sizeof(txjob_t) + dbytes + q->cb);
    if (!j) {
      failed += q->cn;
      last = ENOBUFS;
      q->cn = 0;
      continue;
    }
    j->next = NULL;
    j->n = 0;
    j->len = 0;
    j->d = (int32_t *)(j + 1);
    j->data = (uint8_t *)j->d + dbytes;
    q->cj = j;
  }
  for (uint32_t i = 0; i < n; i++) {
    int32_t off = d[4 * i], len = d[4 * i + 1];
    if (t->pick[i] >= PICK_NOFD) {
      failed++;
      last = t->pick[i] == PICK_BAD ? EINVAL : EAFNOSUPPORT;
      continue;
    }
    txjob_t *j = t->q[t->pick[i]].cj;
    if (!j) continue; /* (counted above: no memory for its job) */
    memcpy(j->data + j->len, (uint8_t *)arena + off, (size_t)len);
    j->d[4 * j->n] = (int32_t)j->len;
    j->d[4 * j->n + 1] = len;
    j->d[4 * j->n + 2] = d[4 * i + 2];
    j->d[4 * j->n + 3] = d[4 * i + 3];
    j->n++;
    j->len += (size_t)len;
  }
  for (int k = 0; k < t->nq; k++) {
    txq_t *q = &t->q[k];
    txjob_t *j = q->cj;
    if (!j) continue;
    q->cj = NULL;
    pthread_mutex_lock(&q->mu);
    /* (a thread far behind: wait for it, as a synchronous send would; the receive ring holds what arrives) */
    while (q->bytes > TXQ_BYTES) pthread_cond_wait(&q->room, &q->mu);
    if (q->tail) q->tail->next = j;
    else q->head = j;
    q->tail = j;
    q->bytes += j->len;
    __atomic_add_fetch(&t->queued, j->n, __ATOMIC_RELAXED);
    pthread_cond_signal(&q->work);
    pthread_mutex_unlock(&q->mu);
  }
  return tx_result(env, sent, failed, last);
}

/* txCollect(handle) -> [sent, failed, lastErrno, queued]: what the transmit threads did since the last call, and hold */
static napi_value tx_collect(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  tx_t *t = tx_call(env, info, argv, 1, "txCollect(handle)");
  if (!t) return NULL;
  uint32_t sent = __atomic_exchange_n(&t->sent, 0, __ATOMIC_RELAXED);
  uint32_t failed = __atomic_exchange_n(&t->failed, 0, __ATOMIC_RELAXED);
  napi_value arr = tx_result(env, sent, failed, failed ? __atomic_load_n(&t->last, __ATOMIC_RELAXED) : 0), v;
  napi_create_uint32(env, __atomic_load_n(&t->queued, __ATOMIC_RELAXED), &v);
  napi_set_element(env, arr, 3, v);
  return arr;
}

/* txDrain(handle, ms) -> true when every transmit thread has sent all it was given (within ms) */
static napi_value tx_drain(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint32_t ms = 1000;
  tx_t *t = tx_call(env, info, argv, 2, "txDrain(handle, ms)");
  if (!t) return NULL;
  napi_get_value_uint32(env, argv[1], &ms);
  int idle = 0;
  for (uint32_t waited = 0;; waited++) {
    idle = 1;
    for (int k = 0; k < t->nq && idle; k++) {
      pthread_mutex_lock(&t->q[k].mu);
      if (t->q[k].head || t->q[k].busy) idle = 0;
      pthread_mutex_unlock(&t->q[k].mu);
    }
    if (idle || waited >= ms) break;
    usleep(1000);
  }
  napi_value v;
  napi_get_boolean(env, idle, &v);
  return v;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"tunOpen", NULL, tun_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollStart", NULL, poll_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollStop", NULL, poll_stop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ringOpen", NULL, ring_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ringStart", NULL, ring_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ringStats", NULL, ring_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ringSetProgram", NULL, ring_set_program, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ringClose", NULL, ring_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"txOpen", NULL, tx_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"txSend", NULL, tx_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"txCollect", NULL, tx_collect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"txDrain", NULL, tx_drain, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
