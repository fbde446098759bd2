# shellcheck shell=bash
# The docker runtime's part of the preflight: the docker CLI, the engine, the NVIDIA runtime and the
# image, as docker-*= lines (multi-line values base64). Read-only (it looks the image up in the
# registry without pulling) and always exits 0.

b64() { base64 | tr -d '\n'; }
if ! command -v docker >/dev/null 2>&1; then echo docker-cli=missing; exit 0; fi
echo docker-cli=present
if ! info=$(docker info --format '{{.ServerVersion}}' 2>&1); then echo "docker-engine=unreachable $(printf '%s' "$info" | b64)"; exit 0; fi
echo "docker-engine=$info"
runtimes=$(docker info --format '{{range $k, $v := .Runtimes}}{{$k}} {{end}}' 2>/dev/null || true)
echo "docker-runtimes=$runtimes"
# The engine pulls over plain HTTP from a registry on loopback (its insecure ranges: 127.0.0.0/8
# always, ::1/128 in newer releases) or one it is told is insecure; the CLI's look-up needs --insecure
# for those, and gets it for those only, after the look-up over TLS failed (it sends the registry
# login, which must not go over plain HTTP elsewhere).
registry=@REGISTRY@
engine_insecure() {
  local insecure
  insecure=" $(docker info --format '{{range .RegistryConfig.InsecureRegistryCIDRs}}{{.}} {{end}}{{range $k, $v := .RegistryConfig.IndexConfigs}}{{if not $v.Secure}}{{$k}} {{end}}{{end}}' 2>/dev/null) "
  if [[ $registry =~ ^(localhost|127(\.[0-9]{1,3}){3})(:[0-9]+)?$ && $insecure == *" 127.0.0.0/8 "* ]]; then return 0; fi
  if [[ $registry =~ ^\[::1\](:[0-9]+)?$ && $insecure == *" ::1/128 "* ]]; then return 0; fi
  [[ $insecure == *" $registry "* ]]
}
if docker image inspect @IMAGE@ >/dev/null 2>&1; then echo docker-image=present
elif out=$(timeout 30 docker manifest inspect @IMAGE@ 2>&1 >/dev/null); then echo docker-image=pullable
elif engine_insecure && timeout 30 docker manifest inspect --insecure @IMAGE@ >/dev/null 2>&1; then echo docker-image=pullable
else echo "docker-image=unavailable $(printf '%s' "$out" | b64)"; fi
