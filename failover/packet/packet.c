// Send-only AF_PACKET socket for Node (plain N-API, so one binary serves every Node major).
// open() -> fd; link(fd, ifname) -> { index, mac, arptype }; send(fd, ifindex, frame) -> bytes; close(fd).
// The socket's protocol is 0: it receives nothing, so nothing queues on it.
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  const char *code = err == EPERM ? "EPERM" : err == EACCES ? "EACCES" : err == ENODEV ? "ENODEV"
    : err == ENXIO ? "ENXIO" : err == ENETDOWN ? "ENETDOWN" : err == EAGAIN ? "EAGAIN" : err == EBADF ? "EBADF"
    : err == EMSGSIZE ? "EMSGSIZE" : err == ENOBUFS ? "ENOBUFS" : err == EINVAL ? "EINVAL" : "EIO";
  napi_throw_error(env, code, msg);
  return NULL;
}

static int arg_int(napi_env env, napi_value v, int32_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return 0;
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket(AF_PACKET)", errno);
  napi_value r;
  napi_create_int32(env, fd, &r);
  return r;
}

static napi_value js_link(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  char name[IFNAMSIZ + 1];
  size_t len = 0;
  if (argc < 2 || !arg_int(env, argv[0], &fd)
      || napi_get_value_string_utf8(env, argv[1], name, sizeof name, &len) != napi_ok || len == 0 || len >= IFNAMSIZ) {
    napi_throw_type_error(env, "EINVAL", "link(fd, ifname): bad arguments");
    return NULL;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, name, len);
  if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) return throw_errno(env, name, errno);
  int index = ifr.ifr_ifindex;
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) return throw_errno(env, name, errno);
  napi_value r, v, mac;
  void *data;
  napi_create_object(env, &r);
  napi_create_int32(env, index, &v);
  napi_set_named_property(env, r, "index", v);
  napi_create_int32(env, ifr.ifr_hwaddr.sa_family, &v);
  napi_set_named_property(env, r, "arptype", v);
  napi_create_buffer_copy(env, 6, ifr.ifr_hwaddr.sa_data, &data, &mac);
  napi_set_named_property(env, r, "mac", mac);
  return r;
}

static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd, index;
  bool is_buffer = false;
  void *frame = NULL;
  size_t len = 0;
  if (argc < 3 || !arg_int(env, argv[0], &fd) || !arg_int(env, argv[1], &index)
      || napi_is_buffer(env, argv[2], &is_buffer) != napi_ok || !is_buffer
      || napi_get_buffer_info(env, argv[2], &frame, &len) != napi_ok || len < ETH_HLEN) {
    napi_throw_type_error(env, "EINVAL", "send(fd, ifindex, frame): bad arguments (frame: a Buffer with an Ethernet header)");
    return NULL;
  }
  // The frame carries its own Ethernet header (SOCK_RAW); the address names the interface only.
  struct sockaddr_ll to;
  memset(&to, 0, sizeof to);
  to.sll_family = AF_PACKET;
  to.sll_ifindex = index;
  to.sll_halen = ETH_ALEN;
  memcpy(to.sll_addr, frame, ETH_ALEN);
  memcpy(&to.sll_protocol, (char *)frame + 12, 2);
  ssize_t n = sendto(fd, frame, len, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to);
  if (n < 0) return throw_errno(env, "sendto", errno);
  napi_value r;
  napi_create_int32(env, (int32_t)n, &r);
  return r;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  if (argc < 1 || !arg_int(env, argv[0], &fd)) {
    napi_throw_type_error(env, "EINVAL", "close(fd): bad arguments");
    return NULL;
  }
  if (close(fd) < 0) return throw_errno(env, "close", errno);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL },
    { "link", NULL, js_link, NULL, NULL, NULL, napi_enumerable, NULL },
    { "send", NULL, js_send, NULL, NULL, NULL, napi_enumerable, NULL },
    { "close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
