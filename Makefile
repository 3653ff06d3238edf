# Builds and installs libhyperfabric: the shared library (SONAME libhyperfabric.so.<major>),
# the static library, the header and the pkg-config file.
#
#   make                          # cargo build --release
#   make install PREFIX=/opt/hf   # builds first if needed; DESTDIR is honoured
#   make -C c-examples            # the C examples, against an installed copy (pkg-config)

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BUILD_DIR  ?= target/release
VERSION    := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
MAJOR      := $(firstword $(subst ., ,$(VERSION)))

.PHONY: all install uninstall

all:
	cargo build --release

install:
	test -f $(BUILD_DIR)/libhyperfabric.so || cargo build --release
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)
	install -m 0755 $(BUILD_DIR)/libhyperfabric.so $(DESTDIR)$(LIBDIR)/libhyperfabric.so.$(VERSION)
	ln -sf libhyperfabric.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libhyperfabric.so.$(MAJOR)
	ln -sf libhyperfabric.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/libhyperfabric.so
	install -m 0644 $(BUILD_DIR)/libhyperfabric.a $(DESTDIR)$(LIBDIR)/libhyperfabric.a
	install -m 0644 include/hyperfabric.h $(DESTDIR)$(INCLUDEDIR)/hyperfabric.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    hyperfabric.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/hyperfabric.pc

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libhyperfabric.so $(DESTDIR)$(LIBDIR)/libhyperfabric.so.$(MAJOR) \
	      $(DESTDIR)$(LIBDIR)/libhyperfabric.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libhyperfabric.a \
	      $(DESTDIR)$(INCLUDEDIR)/hyperfabric.h $(DESTDIR)$(LIBDIR)/pkgconfig/hyperfabric.pc
