#!/usr/bin/env bash
# The NuGet package round trip: pack AlexNet.Aot (the runtime in lib/net10.0, the source generator in
# analyzers/dotnet/cs, build/ and buildTransitive/ props and targets), check its layout, then in a
# fresh folder make a project from tests/package-sample/ that has only a PackageReference to it and
# its own spec (tiny.model), restore it from the local folder feed (into a packages folder of its own,
# so no older copy of the package is used), run it (the generated model on generated weights: the
# probabilities must sum to 1 over 3 classes), and build it once more with a spec that has an error:
# the build must fail with the generator's ANX id at file(line,col). Exits non-zero on any failure.
#   bash scripts/test-package.sh            ALEXNET_PACKAGE_VERSION overrides the version (0.1.0)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ALEXNET_ROOT"

version=${ALEXNET_PACKAGE_VERSION:-0.1.0}
feed="$ALEXNET_ROOT/artifacts/nuget"
nupkg="$feed/AlexNet.Aot.$version.nupkg"
started=$SECONDS
fail() { echo "FAIL: $*" >&2; exit 1; }

alexnet_step "package: dotnet pack AlexNet.Aot $version"
rm -f "$feed"/AlexNet.Aot.*.nupkg
# The version is passed only when overridden: a global PackageVersion would also reach the generator's
# restore and make the next solution build restore it again.
version_arg=()
[ -n "${ALEXNET_PACKAGE_VERSION:-}" ] && version_arg=(-p:PackageVersion="$version")
dotnet pack runtime/AlexNet.Aot.Runtime/AlexNet.Aot.Runtime.csproj -c Release -o "$feed" -nologo "${version_arg[@]}"
[ -f "$nupkg" ] || fail "no $nupkg"
listing=$(unzip -Z1 "$nupkg")
for entry in lib/net10.0/AlexNet.Aot.Runtime.dll analyzers/dotnet/cs/AlexNet.Aot.Generator.dll \
    build/AlexNet.Aot.props build/AlexNet.Aot.targets buildTransitive/AlexNet.Aot.props buildTransitive/AlexNet.Aot.targets; do
    grep -qx "$entry" <<<"$listing" || fail "$nupkg has no $entry"
done
if grep -q '^lib/.*Generator' <<<"$listing"; then fail "$nupkg has the generator under lib/"; fi
nuspec=$(unzip -p "$nupkg" AlexNet.Aot.nuspec)
grep -q '<dependency id="SkiaSharp"' <<<"$nuspec" || fail "the nuspec lacks the SkiaSharp dependency"
grep -q '<dependency id="OnnxSharp"' <<<"$nuspec" || fail "the nuspec lacks the OnnxSharp dependency"
grep -q '<dependency id="Google.Protobuf"' <<<"$nuspec" || fail "the nuspec lacks the Google.Protobuf dependency"
if grep -q 'AlexNet.Aot.Generator' <<<"$nuspec"; then fail "the nuspec depends on the generator project"; fi
unzip -l "$nupkg" | sed -n '4,$p' | grep -v -e '_rels/' -e 'package/services' -e 'Content_Types' | head -n -2
echo "packed in $((SECONDS - started)) s"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/alexnet-package.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Sources: the local folder feed, the machine's NuGet cache as a read-only feed (so the runtime's dependencies
# need no download when already there), and the sources this machine's NuGet configuration already has (not
# cleared), for the dependencies. That the sample restored our freshly packed AlexNet.Aot is checked below.
cache_source=""
global_packages=$(dotnet nuget locals global-packages --list | sed -n 's/^global-packages: //p')
if [ -n "$global_packages" ] && [ -d "$global_packages" ]; then
    cache_source="<add key=\"machine-cache\" value=\"$global_packages\" />"
fi
cat >"$tmp/NuGet.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <config>
    <add key="globalPackagesFolder" value="$tmp/packages" />
  </config>
  <packageSources>
    <add key="alexnet-local" value="$feed" />
    $cache_source
  </packageSources>
</configuration>
XML

# The sample's packages folder wins over the machine's (NUGET_PACKAGES would override NuGet.config).
export NUGET_PACKAGES="$tmp/packages"

# new_sample DIR: a project from the template beside $tmp/NuGet.config, with Program.cs and tiny.model.
new_sample() {
    mkdir -p "$1"
    sed "s/@VERSION@/$version/" tests/package-sample/Sample.csproj.template >"$1/Sample.csproj"
    cp tests/package-sample/Program.cs tests/package-sample/tiny.model "$1/"
}

alexnet_step "package: a fresh project with only the package and tiny.model: dotnet run"
sample="$tmp/sample"
new_sample "$sample"
step=$SECONDS
(cd "$sample" && dotnet run -c Release -nologo) | tee "$tmp/run.log" || fail "the package sample failed (above)"
grep -qx 'package sample: OK' "$tmp/run.log" || fail "the package sample did not report OK"
restored="$tmp/packages/alexnet.aot/$version/alexnet.aot.$version.nupkg"
cmp -s "$restored" "$nupkg" || fail "the sample did not restore $nupkg (got ${restored})"
editorconfig="$sample/obj/Release/net10.0/Sample.GeneratedMSBuildEditorConfig.editorconfig"
[ "$(grep -c '^build_property.RootNamespace = Sample$' "$editorconfig")" = 1 ] \
    || fail "RootNamespace is not visible to the generator exactly once ($editorconfig)"
echo "sample restored, built and ran in $((SECONDS - step)) s"

alexnet_step "package: a spec error fails the build at file(line,col)"
broken="$tmp/broken"
new_sample "$broken"
# The spec listed again by hand (./ form) besides the package's default glob: still one spec, one error.
sed -i 's|</Project>|  <ItemGroup><AdditionalFiles Include="./*.model" /></ItemGroup>\n</Project>|' "$broken/Sample.csproj"
printf 'model Tiny\ninput 1x8x8\nc1 conv 4 k3 p1 relu swish maxpool(2, s2)\nf1 dense 3 softmax\n' >"$broken/tiny.model"
# Nothing but the generator's diagnostic may fail it: this Program uses only the catalog.
printf 'namespace Sample;\ninternal static class Program\n{\n    private static int Main() => Sample.ModelCatalog.All.Count;\n}\n' >"$broken/Program.cs"
step=$SECONDS
if (cd "$broken" && dotnet build -c Release -nologo) >"$tmp/broken.log" 2>&1; then
    cat "$tmp/broken.log"
    fail "the sample with a broken spec built"
fi
errors=$(grep -o 'tiny\.model([0-9,]*): error [A-Z]*[0-9]*' "$tmp/broken.log" | sort -u)
other=$(grep -E ': error ' "$tmp/broken.log" | grep -v 'tiny\.model(' | sort -u || true)
echo "the build failed (in $((SECONDS - step)) s) with: $errors"
if [ "$errors" != "tiny.model(3,22): error ANX001" ] && ! grep -qE '^tiny\.model\(3,22,[0-9]+,[0-9]+\): error ANX001$' <<<"$errors"; then
    cat "$tmp/broken.log"
    fail "expected exactly one error, ANX001 at tiny.model(3,22)"
fi
[ -z "$other" ] || { echo "$other"; fail "the broken sample failed for other reasons too"; }

echo
echo "test-package.sh: passed in $((SECONDS - started)) s"
