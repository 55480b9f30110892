"""cmake --install of the build tree into a fresh prefix, then libplateau used from there only:
  * the installed files: libplateau.so.VERSION with its SONAME link, the headers, plateau.pc, the CMake
    package and the Python package;
  * tests/api/forward_example.c built with `pkg-config --cflags --libs plateau` (PKG_CONFIG_PATH into
    the prefix) and with a CMake project's find_package(plateau) / plateau::plateau: both print the
    last position's logits of a synthetic model as `plateau logits --all` does (within 1e-5 relative);
  * the Python package imported from the prefix (no PYTHONPATH into the source, no PLATEAU_LIB) finds
    the installed library and computes the same logits."""
import glob
import os
import shutil
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apilib as al  # noqa: E402

build, work = sys.argv[1], sys.argv[2]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
prefix = os.path.join(work, "prefix")
al.run(["cmake", "--install", build, "--prefix", prefix])


def one(pattern):
    found = glob.glob(os.path.join(prefix, pattern), recursive=True)
    if len(found) != 1:
        al.fail("installed %s: %s" % (pattern, found or "none"))
    return found[0]


lib = one("**/libplateau.so.0.1.0")
libdir = os.path.dirname(lib)
if os.readlink(os.path.join(libdir, "libplateau.so.0")) != "libplateau.so.0.1.0":
    al.fail("libplateau.so.0 does not point to libplateau.so.0.1.0")
soname = al.run(["objdump", "-p", lib])
if "SONAME               libplateau.so.0" not in soname:
    al.fail("the library's SONAME is not libplateau.so.0")
one("include/plateau/plateau.h")
pc = one("**/pkgconfig/plateau.pc")
one("**/cmake/plateau/plateauConfig.cmake")
one("**/cmake/plateau/plateauConfigVersion.cmake")
pydir = os.path.dirname(os.path.dirname(one("**/plateau/__init__.py")))
print("ok installed: %s" % ", ".join(os.path.relpath(p, prefix) for p in (lib, pc, pydir)))

model = os.path.join(work, "model")
al.run([al.BIN, "synth", model, "--layers", "2", "--embd", "32", "--heads", "4", "--ctx", "16", "--vocab", "300",
        "--family", "llama", "--kv-heads", "2"])
ids = ["3", "141", "59", "26", "5"]
want = np.array(al.run([al.BIN, "logits", model, "--ids", ",".join(ids), "--all"]).split(), np.float64)
env = dict(os.environ)
env.pop("PLATEAU_LIB", None)
env["PKG_CONFIG_PATH"] = os.path.dirname(pc)
env["LD_LIBRARY_PATH"] = libdir
example = os.path.join(al.HERE, "forward_example.c")

flags = al.run(["pkg-config", "--cflags", "--libs", "plateau"], env=env).split()
exe = os.path.join(work, "forward_pkgconfig")
al.run([os.environ.get("CC", "cc"), "-std=c11", "-Wall", "-Wextra", "-Werror", example, "-o", exe] + flags, env=env)
got = np.array(al.run([exe, model] + ids, env=env).split(), np.float64)
if got.shape != want.shape or al.rel_err(got, want) > 1e-5:
    al.fail("pkg-config build: logits differ from plateau logits (relative %.3g)" % al.rel_err(got, want))
print("ok C program built with pkg-config --cflags --libs plateau (%s): logits as plateau logits, %.2g" %
      (" ".join(flags), al.rel_err(got, want)))

proj = os.path.join(work, "cmake_project")
os.makedirs(proj)
with open(os.path.join(proj, "CMakeLists.txt"), "w") as f:
    f.write("cmake_minimum_required(VERSION 3.18)\nproject(uses_plateau LANGUAGES C)\n"
            "find_package(plateau 0.1 REQUIRED)\nadd_executable(forward_example %s)\n"
            "target_link_libraries(forward_example PRIVATE plateau::plateau)\n" % example)
al.run(["cmake", "-S", proj, "-B", os.path.join(proj, "build"), "-DCMAKE_PREFIX_PATH=" + prefix], env=env)
al.run(["cmake", "--build", os.path.join(proj, "build")], env=env)
got = np.array(al.run([os.path.join(proj, "build", "forward_example"), model] + ids, env=env).split(), np.float64)
if got.shape != want.shape or al.rel_err(got, want) > 1e-5:
    al.fail("CMake build: logits differ from plateau logits")
print("ok C program built with find_package(plateau) and plateau::plateau")

code = ("import sys, numpy as np, plateau\n"
        "m = plateau.Model(sys.argv[1])\n"
        "logits, _ = m.run_with_cache(np.array(sys.argv[2:], np.int32), hooks=[])\n"
        "print(plateau.library)\n"
        "print('\\n'.join('%.9g' % x for x in logits[-1]))\n")
penv = dict(env)
penv["PYTHONPATH"] = pydir
penv.pop("LD_LIBRARY_PATH")
out = al.run([sys.executable, "-c", code, model] + ids, env=penv, cwd=work).split("\n")
if not os.path.realpath(out[0]).startswith(os.path.realpath(prefix)):
    al.fail("the installed Python package loaded %s, not the prefix's library" % out[0])
got = np.array(out[1:-1], np.float64)
if got.shape != want.shape or al.rel_err(got, want) > 1e-5:
    al.fail("installed Python package: logits differ from plateau logits")
print("ok the installed Python package loads %s and computes the same logits" % os.path.relpath(out[0], prefix))
print("install tests passed")
