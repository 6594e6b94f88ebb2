{
  "targets": [{
    "target_name": "packet",
    "sources": ["packet.c"],
    "cflags": ["-Wall", "-Wextra", "-O2"],
    "defines": ["NAPI_VERSION=8"]
  }]
}
