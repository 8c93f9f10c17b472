{
  "targets": [
    {
      "target_name": "pagegift",
      "sources": [
        "native/binding.c",
        "native/sys_mem.c",
        "native/sys_sock.c",
        "native/binding_async.c",
        "native/binding_rx.c",
        "native/arraybuffer.cc",
        "native/sys_notify.c",
        "native/sys_sched.c"
      ],
      "cflags_c": ["-std=gnu11"],
      "cflags_cc": ["-std=gnu++17"],
      "cflags": [ "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    }
  ]
}
