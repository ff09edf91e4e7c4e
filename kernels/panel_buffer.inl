// PanelBuffer: a 64-byte aligned scratch buffer, per thread where declared
// thread_local, grown to the largest size asked for and kept across calls (no
// allocation per call once warm). Included inside the anonymous namespace of
// ISA-specific kernel files (internal linkage: no inline function of a shared header
// is compiled with ISA flags, see kernels/CMakeLists.txt); the includer provides <new>.
struct PanelBuffer {
  uint8_t* data = nullptr;
  size_t size = 0;
  ~PanelBuffer() {
    if (data) ::operator delete(data, std::align_val_t(64));
  }
  uint8_t* get(size_t n) {
    if (n > size) {
      if (data) ::operator delete(data, std::align_val_t(64));
      data = nullptr;
      size = 0;
      data = static_cast<uint8_t*>(::operator new(n, std::align_val_t(64)));
      size = n;
    }
    return data;
  }
};
