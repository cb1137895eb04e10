#!/bin/sh
# Installs the threadhost C library as `cargo cinstall` does, for machines without cargo-c:
# libthreadhost.so and libthreadhost.a into LIBDIR, threadhost.h into PREFIX/include, and a
# threadhost.pc generated for that prefix into LIBDIR/pkgconfig.
#
#   capi/install.sh [--prefix DIR] [--libdir DIR] [--destdir DIR] [--from DIR]
#
#   --prefix DIR   where the library will live (default /usr/local); written into the .pc
#   --libdir DIR   default PREFIX/lib
#   --destdir DIR  stage the files under DIR (for packaging); the .pc still names PREFIX
#   --from DIR     take libthreadhost.so / .a from DIR instead of building them with
#                  `cargo build --release -p threadhost-capi` (target/release)
#
# With cargo-c installed, `cargo cinstall --release -p threadhost-capi --prefix DIR` does
# the same and also gives the shared library its soname.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
prefix=/usr/local
libdir=
destdir=
from=
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --libdir) libdir=$2; shift 2 ;;
        --destdir) destdir=$2; shift 2 ;;
        --from) from=$2; shift 2 ;;
        *) echo "install.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
[ -n "$libdir" ] || libdir=$prefix/lib

if [ -z "$from" ]; then
    (cd "$here/.." && cargo build --release -p threadhost-capi)
    from=$here/../target/release
fi
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$here/Cargo.toml" | head -n 1)
[ -n "$version" ] || { echo "install.sh: no version in $here/Cargo.toml" >&2; exit 1; }
for lib in libthreadhost.so libthreadhost.a; do
    [ -f "$from/$lib" ] || { echo "install.sh: $from/$lib not found (build first)" >&2; exit 1; }
done

mkdir -p "$destdir$libdir/pkgconfig" "$destdir$prefix/include"
cp "$from/libthreadhost.so" "$from/libthreadhost.a" "$destdir$libdir/"
cp "$here/include/threadhost.h" "$destdir$prefix/include/"
cat > "$destdir$libdir/pkgconfig/threadhost.pc" <<PC
prefix=$prefix
exec_prefix=\${prefix}
libdir=$libdir
includedir=\${prefix}/include

Name: threadhost
Description: Hosted services on OS threads with a graceful, deadline-bounded lifecycle
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lthreadhost
Libs.private: -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
PC
echo "installed threadhost $version: $destdir$libdir/libthreadhost.{so,a}, $destdir$prefix/include/threadhost.h, $destdir$libdir/pkgconfig/threadhost.pc"
