#!/usr/bin/env bash
# Build BVLC Caffe (master 9b89154, as packaged in the PyPI sdist brocolli-caffe==9.0.2), CPU only,
# with pycaffe for Debian's system python3. It is the oracle for the parity fixtures; the project
# itself never imports it. Usage: tools/caffe/build.sh [PREFIX]   (default ~/.cache/fcn-ref/caffe)
# Afterwards: tools/caffe/python3 -c 'import caffe' runs pycaffe from PREFIX.
set -euo pipefail
prefix=${1:-${FCN_CAFFE_HOME:-$HOME/.cache/fcn-ref/caffe}}
version=9.0.2
src=$prefix/brocolli-caffe-$version
mkdir -p "$prefix"

if [ -f "$src/python/caffe/_caffe.so" ]; then
  echo "caffe already built in $src"; exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends cmake g++ make \
  libboost-system-dev libboost-thread-dev libboost-filesystem-dev libboost-python-dev libboost-regex-dev \
  libprotobuf-dev protobuf-compiler libgoogle-glog-dev libgflags-dev libhdf5-dev libopenblas-dev \
  libgtest-dev python3-numpy python3-dev python3-protobuf python3-h5py python3-skimage >/dev/null

if [ ! -d "$src" ]; then
  pip download --quiet --no-deps --no-binary :all: "brocolli-caffe==$version" -d "$prefix"
  tar xzf "$prefix/brocolli-caffe-$version.tar.gz" -C "$prefix"
fi
# The fork caps protobuf reads at 512 MiB; upstream Caffe allows INT_MAX, which full-size FCNs need.
sed -i 's/SetTotalBytesLimit(536870912)/SetTotalBytesLimit(INT_MAX)/' "$src/src/caffe/util/io.cpp"

# Debian names boost-python after the Python version; CMake asks for plain boost_python.
pyver=$(python3 -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
pyinc=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
npinc=$(python3 -c 'import numpy; print(numpy.get_include())')
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
linkdir=$prefix/linkdir
mkdir -p "$linkdir"
ln -sf "/usr/lib/$arch/libboost_python$pyver.so" "$linkdir/libboost_python.so"
ln -sf "/usr/lib/$arch/libboost_python$pyver.so" "$linkdir/libboost_python3.so"

mkdir -p "$src/build"
cd "$src/build"
cmake .. -DCPU_ONLY=ON -DUSE_HDF5=ON -DUSE_LMDB=OFF -DUSE_LEVELDB=OFF -DUSE_OPENCV=OFF \
  -DBUILD_docs=OFF -DBUILD_matlab=OFF -DCMAKE_BUILD_TYPE=Release -Dpython_version=3 -DBLAS=Open \
  -DCMAKE_CXX_FLAGS="-I/usr/include/hdf5/serial -I$pyinc -I$npinc" \
  -DCMAKE_EXE_LINKER_FLAGS="-L$linkdir -L/usr/lib/$arch/hdf5/serial" \
  -DCMAKE_SHARED_LINKER_FLAGS="-L$linkdir -L/usr/lib/$arch/hdf5/serial" \
  -DCMAKE_LIBRARY_PATH="$linkdir;/usr/lib/$arch/hdf5/serial" \
  -DPYTHON_EXECUTABLE=/usr/bin/python3 >"$prefix/cmake.log" 2>&1 || { tail -40 "$prefix/cmake.log"; exit 1; }
make -j"$(nproc)" pycaffe >"$prefix/make.log" 2>&1 || { grep -m20 -B2 -A5 'error' "$prefix/make.log"; exit 1; }
/usr/bin/env PYTHONPATH="$src/python" /usr/bin/python3 -c 'import caffe; print("pycaffe OK:", caffe.__file__)'
