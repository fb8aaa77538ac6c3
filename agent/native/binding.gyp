{
  "targets": [
    {
      "target_name": "isthmus_native",
      "sources": ["src/addon.cc", "src/errors.cc", "src/object.cc", "src/maps.cc", "src/tc.cc", "src/ringbuf.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "libraries": ["-lbpf", "-lelf", "-lz"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"]
    }
  ]
}
