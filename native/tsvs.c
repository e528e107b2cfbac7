/*
 * tsvs's own native module (N-API, C): what Node cannot do by itself. Optional and loaded lazily
 * (src/native.ts); built by `npm run build` (scripts/build-native.mjs) with the system's C compiler against
 * this Node's headers. Replay never needs it.
 *
 *   tunOpen(name)             -> { fd, name }   a TUN device (IFF_TUN | IFF_NO_PI), its fd non-blocking
 *   pollStart(fd, cb, batch)  -> handle         libuv watches fd; when readable, up to `batch` packets are
 *                                               read and cb(packets: Buffer[]) is called once per batch
 *   pollStop(handle)                            stop watching (the fd stays open: the caller closes it)
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
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

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref cb;
  napi_async_context ctx;
  int fd;
  uint32_t batch;
  int stopped;
  unsigned char buf[MAX_PACKET];
} poller_t;

static void on_readable(uv_poll_t *h, int status, int events) {
  poller_t *p = (poller_t *)h->data;
  (void)events;
  if (p->stopped || status < 0) return;
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
  if (n > 0) {
    napi_value cb, recv, result;
    napi_get_reference_value(env, p->cb, &cb);
    napi_get_global(env, &recv);
    if (napi_make_callback(env, p->ctx, recv, cb, 1, &arr, &result) != napi_ok) {
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (pending) {
        napi_value err;
        napi_get_and_clear_last_exception(env, &err);
        napi_fatal_exception(env, err);
      }
    }
  }
  napi_close_handle_scope(env, scope);
}

static void on_closed(uv_handle_t *h) { free(h->data); }

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
  napi_create_reference(env, argv[1], 1, &p->cb);
  napi_value name;
  napi_create_string_utf8(env, "tsvs.poll", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &p->ctx);
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  int e = uv_poll_init(loop, &p->poll, fd);
  if (e == 0) {
    p->poll.data = p;
    e = uv_poll_start(&p->poll, UV_READABLE, on_readable);
  }
  if (e != 0) {
    napi_delete_reference(env, p->cb);
    napi_async_destroy(env, p->ctx);
    free(p);
    napi_throw_error(env, NULL, uv_strerror(e));
    return NULL;
  }
  napi_value ext;
  napi_create_external(env, p, NULL, NULL, &ext);
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
  if (!p->stopped) {
    p->stopped = 1;
    uv_poll_stop(&p->poll);
    napi_delete_reference(env, p->cb);
    napi_async_destroy(env, p->ctx);
    uv_close((uv_handle_t *)&p->poll, on_closed);
  }
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"tunOpen", NULL, tun_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollStart", NULL, poll_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollStop", NULL, poll_stop, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
