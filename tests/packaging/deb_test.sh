#!/bin/sh
# packaging.deb: makes the .deb packages from the build tree (cpack -G DEB), unpacks them into a
# temporary root (dpkg-deb -x; never the machine's /usr) and checks them there: the control
# fields, `mama --version`, the README example built against the root with find_package(mama)
# and with pkg-config, the man page, and bash completion of commands and machine names.
# Exit 77 (CTest skip) when dpkg-deb is missing.
#   deb_test.sh BUILD_DIR SOURCE_DIR CPACK CTEST GENERATOR MAKE_PROGRAM CXX VERSION cli|nocli
set -eu
build=$1 src=$2 cpack=$3 ctest=$4 generator=$5 make_program=$6 cxx=$7 version=$8 with_cli=$9

if ! command -v dpkg-deb >/dev/null 2>&1; then
  echo "dpkg-deb not found (not a Debian system?): skipped"
  exit 77
fi

fail() {
  echo "deb_test: FAILED: $*" >&2
  exit 1
}
check() {  # check DESCRIPTION COMMAND...: runs the command, fails with the description
  what=$1
  shift
  "$@" || fail "$what"
  echo "ok: $what"
}
contains() { case $1 in *"$2"*) return 0 ;; *) return 1 ;; esac; }

work=$(mktemp -d "${TMPDIR:-/tmp}/mama-deb-XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root

# --- the packages ---------------------------------------------------------------------------
(cd "$build" && "$cpack" -G DEB -B "$work/out" --config "$build/CPackConfig.cmake") >"$work/cpack.log" 2>&1 ||
  { cat "$work/cpack.log"; fail "cpack -G DEB"; }
dev_deb=$(ls "$work"/out/libmama-dev_"$version"_all.deb 2>/dev/null) || fail "no libmama-dev_${version}_all.deb: $(ls "$work/out")"
debs=$dev_deb
for deb in $debs; do dpkg-deb -f "$deb"; echo; done
dev_depends=$(dpkg-deb -f "$dev_deb" Depends)
check "libmama-dev depends on libpugixml-dev" contains "$dev_depends" libpugixml-dev
if [ "$with_cli" = cli ]; then
  cli_deb=$(ls "$work"/out/mama_"$version"_*.deb 2>/dev/null) || fail "no mama_${version}_<arch>.deb: $(ls "$work/out")"
  debs="$debs $cli_deb"
  dpkg-deb -f "$cli_deb"
  cli_depends=$(dpkg-deb -f "$cli_deb" Depends)
  for lib in libc6 libstdc++6 libpugixml1v5; do
    check "mama depends on $lib" contains "$cli_depends" "$lib"
  done
fi
mkdir "$root"
for deb in $debs; do dpkg-deb -x "$deb" "$root"; done
(cd "$root" && find . -type f | sort)

# What apt would do with them, as a simulation: every Depends can be resolved here.
if command -v apt-get >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  apt-get -s -o Debug::NoLocking=1 install $debs >"$work/apt.log" 2>&1 ||
    { cat "$work/apt.log"; fail "apt-get -s install of the packages"; }
  grep '^Inst ' "$work/apt.log"
  echo "ok: apt-get -s install resolves the packages' dependencies"
fi

# --- the CLI --------------------------------------------------------------------------------
if [ "$with_cli" = cli ]; then
  cli_version=$("$root/usr/bin/mama" --version)
  check "$root/usr/bin/mama --version prints 'mama $version' (got '$cli_version')" \
    test "$cli_version" = "mama $version"
  if command -v ldd >/dev/null 2>&1; then
    check "the packaged mama needs no library from the build tree" \
      sh -c "! ldd '$root/usr/bin/mama' | grep -e 'not found' -e '$build'"
  fi

  check "mama(1) is installed, gzip'd" test -s "$root/usr/share/man/man1/mama.1.gz"
  man=$work/mama.1
  gzip -dc "$root/usr/share/man/man1/mama.1.gz" >"$man" || fail "mama.1.gz does not unpack"
  if command -v groff >/dev/null 2>&1; then
    groff -man -Tutf8 -ww -z "$man" 2>"$work/groff.err" || true
    check "mama(1) renders without groff warnings: $(cat "$work/groff.err")" \
      test ! -s "$work/groff.err"
    groff -man -Tascii -P-cbou "$man" >"$work/man.txt" 2>/dev/null
    for part in "mama - keep lab test machines" "mama $version" "EXIT STATUS" "ENVIRONMENT" "MAMA_STATE" \
      "MAMA_PATH" "FILES" "run machine [--job text] [--timeout sec] -- command" \
      "mama [options] list" "mama [options] info" "mama [options] clear" \
      "mama [options] wait" "mama [options] stats" "mama [options] import" \
      "mama [options] export"; do
      check "the rendered mama(1) shows '$part'" grep -qF -- "$part" "$work/man.txt"
    done
  else
    check "mama(1) starts with its .TH line (groff not installed: not rendered)" \
      grep -q '^\.TH MAMA 1' "$man"
  fi

  # Every command and global option of `mama --help` is documented in mama(1): a command as an
  # item (.TP tag) of COMMANDS, an option anywhere in the page.
  "$root/usr/bin/mama" --help >"$work/help.txt"
  sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' "$man" >"$work/man.roff"
  commands=$(awk '/^Subcommands:/{s=1;next} s&&/^  [a-z]/{print $1} s&&/^$/{exit}' "$work/help.txt")
  check "mama --help lists commands" test -n "$commands"
  for c in $commands; do
    check "mama(1) documents the command '$c'" grep -Eq "^\.BR? $c( |$)" "$work/man.roff"
    "$root/usr/bin/mama" "$c" --help >>"$work/help.txt"
  done
  # The options of `mama --help` and of every `mama COMMAND --help`.
  options=$(awk '/^Options:/{s=1;next} s&&/^  -/{print} s&&/^$/{s=0}' "$work/help.txt" |
    grep -o -- '--[a-z][a-z-]*' | sort -u)
  check "mama --help lists options" test -n "$options"
  for o in $options; do
    check "mama(1) documents the option '$o'" grep -qF -- "$o" "$work/man.roff"
  done

  completion=$root/usr/share/bash-completion/completions/mama
  check "bash completion is installed" test -s "$completion"
  if command -v bash >/dev/null 2>&1; then
    cp "$src/examples/lab.xml" "$work/lab.xml"
    # complete WORD...: the completions bash offers for the command line WORD... (the cursor
    # at the end of the last word), one a line, sorted.
    cat >"$work/complete.bash" <<'EOF'
. "$COMPLETION"
COMP_WORDS=("$@")
COMP_CWORD=$(($# - 1))
_mama
((${#COMPREPLY[@]} == 0)) || printf '%s\n' "${COMPREPLY[@]}" | sort
EOF
    complete_words() {  # complete_words STATE WORD...: MAMA_STATE=STATE (empty: unset)
      state=$1
      shift
      env -u MAMA_STATE -u MAMA_PATH ${state:+MAMA_STATE=$state} PATH="$root/usr/bin:$PATH" \
        COMPLETION="$completion" bash "$work/complete.bash" "$@"
    }
    lab=$work/lab.xml
    got=$(complete_words "$lab" mama r)
    check "completion: 'mama r' -> run (got '$got')" test "$got" = run
    for c in $commands; do
      complete_words "$lab" mama "$c" >"$work/completed.txt"
      check "completion: 'mama $c' completes to the command of mama --help" \
        grep -qx "$c" "$work/completed.txt"
    done
    got=$(complete_words "$lab" mama --stale-after 60 l | tr '\n' ' ')
    check "completion: 'mama --stale-after 60 l' -> list (got '$got')" test "$got" = "list "
    got=$(complete_words "$lab" mama run "" | tr '\n' ' ')
    check "completion: 'mama run ' -> the sample lab's machines (got '$got')" \
      test "$got" = "alpha bravo charlie delta-vm "
    got=$(complete_words "" mama --state "$lab" clear c | tr '\n' ' ')
    check "completion: 'mama --state FILE clear c' -> charlie from FILE (got '$got')" \
      test "$got" = "charlie "
    got=$(complete_words "$lab" mama info --json b | tr '\n' ' ')
    check "completion: 'mama info --json b' -> bravo (got '$got')" test "$got" = "bravo "
    complete_words "$lab" mama run alpha -- "" >"$work/commands.txt"
    check "completion: 'mama run alpha -- ' offers commands (sh among them)" \
      grep -qx sh "$work/commands.txt"
    got=$(complete_words "$work/nonexistent.xml" mama wait "" | tr '\n' ' ')
    check "completion: no machine names when the state file is missing (got '$got')" \
      test "$got" = ""
  fi
fi

# --- the README example against the unpacked root ----------------------------------------------
readme_example=$work/readme_example.cpp
awk '/^## Claim a machine from C\+\+/{q=1} q&&/^```cpp/{p=1;next} p&&/^```/{exit} p' \
  "$src/README.md" >"$readme_example"
check "README.md has the C++ example under '## Claim a machine from C++'" test -s "$readme_example"
check "the README example is tests/packaging/find_package/main.cpp" \
  cmp -s "$readme_example" "$src/tests/packaging/find_package/main.cpp"

# range-v3 is the CLI's build dependency only: no installed header may need it (mama.pc cannot
# require it: Debian's librange-v3-dev has no pkg-config file).
check "no installed header includes range-v3" \
  test -z "$(grep -rl 'range/v3' "$root/usr/include/mama" || true)"

# With CMake: find_package(mama CONFIG) from <root>/usr.
"$ctest" --build-and-test "$src/tests/packaging/find_package" "$work/find_package" \
  --build-generator "$generator" --build-makeprogram "$make_program" \
  --build-options "-DCMAKE_PREFIX_PATH=$root/usr" "-DCMAKE_CXX_COMPILER=$cxx" \
  --test-command "$ctest" --output-on-failure >"$work/find_package.log" 2>&1 ||
  { cat "$work/find_package.log"; fail "the README example with find_package(mama) from $root/usr"; }
mama_dir=$(sed -n 's/^mama_DIR:PATH=//p' "$work/find_package/CMakeCache.txt")
check "find_package(mama) used the unpacked package (mama_DIR=$mama_dir)" \
  test "$mama_dir" = "$root/usr/lib/cmake/mama"
echo "ok: the README example built with find_package(mama) from the package and ran"

# With pkg-config: the relocatable mama.pc from <root>/usr/share/pkgconfig.
if command -v pkg-config >/dev/null 2>&1; then
  export PKG_CONFIG_PATH="$root/usr/share/pkgconfig"
  check "pkg-config --modversion mama is $version" test "$(pkg-config --modversion mama)" = "$version"
  cflags=$(pkg-config --cflags mama)
  libs=$(pkg-config --libs mama)
  echo "pkg-config --cflags mama: $cflags"
  echo "pkg-config --libs mama: $libs"
  # The first -I is mama's (${pcfiledir}/../../include): it must be the unpacked include dir.
  # shellcheck disable=SC2086 # one flag a line
  include_dir=$(printf '%s\n' $cflags | sed -n 's/^-I//p' | head -n 1)
  check "pkg-config --cflags mama names the unpacked include dir ($include_dir)" \
    test "$(cd "$include_dir" && pwd -P)" = "$(cd "$root/usr/include" && pwd -P)"
  check "pkg-config --libs mama links pugixml" contains "$libs" "-lpugixml"
  # shellcheck disable=SC2086
  "$cxx" -std=c++20 $cflags "$readme_example" $libs -o "$work/pc_example" ||
    fail "the README example with pkg-config"
  cp "$src/tests/packaging/lab.xml" "$work/pc-lab.xml"
  out=$("$work/pc_example" "$work/pc-lab.xml")
  check "the README example built with pkg-config claims (printed '$out')" \
    test "$out" = "claimed test-machine"
else
  echo "pkg-config not installed: the pkg-config build is not checked"
fi
echo "deb_test: all checks passed"
