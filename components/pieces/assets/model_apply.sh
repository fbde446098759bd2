# shellcheck shell=bash
# The model's apply: the tiktoken encodings (@TIKTOKEN_FETCHES@, one model_tiktoken.sh each), then the
# snapshot, downloaded (model_download.py, with @DOWNLOAD_ARGS@: the repository, the revision, the
# cache directory, the number of connections and the excluded globs) and verified (model_verify.py)
# unless the probe (model_probe.py) already finds it verified.
#  - The first line names where it fetches from, credentials left out (they travel in the step's secret
#    environment): another endpoint is a change of the step.
#  - tiktoken_url is VLLM_WS_TIKTOKEN_BASE escaped for a curl config, which reaches curl on stdin: the
#    URL is never on its command line. curl sends the URL's credentials as basic auth, and not across a
#    redirect to another host.
#  - After a kill: huggingface_hub up to 1.17 resumes <etag>.incomplete with a Range request; from 1.18
#    each run writes <etag>.<random>.incomplete and starts over, so a killed run's partial file is only
#    dead weight (up to a whole shard): the find clears those, and keeps the resumable kinds (the
#    download script's own <etag>.vllm-ws.incomplete, and hf's older one).
#  - A corrupt blob would be trusted by the next hf download: a failed verification moves the snapshot
#    away so that it is fetched again.

# endpoint: @ENDPOINT@; tiktoken: @TIKTOKEN_BASE@
own_dir @CACHE_DIR@
own_dir @TIKTOKEN_DIR@
# In the record before its download: a revision that never serves (its switch rolled back, or its
# download was cut off) is removed by the next switch that succeeds, or by destroy; one someone had
# downloaded into the cache before is adopted, and stays.
own_claim_hf_revision @CACHE_DIR@ @REPO@ @REVISION@
tiktoken_url=${VLLM_WS_TIKTOKEN_BASE//\\/\\\\}; tiktoken_url=${tiktoken_url//\"/\\\"}
@TIKTOKEN_FETCHES@
if [ "$(VLLM_WS_REMOVE_CHANGED=1 python3 - @SNAPSHOT@ @MANIFEST@ @REVISION@ @EXCLUDE@ <<'VLLM_WS_PY'
@PROBE_PY@
VLLM_WS_PY
)" != @VERIFIED@ ]; then
  echo @DOWNLOADING@ >&2
  [ -d @BLOBS@ ] && find @BLOBS@ -maxdepth 1 -name '*.*.incomplete' ! -name '*.vllm-ws.incomplete' -delete
  HF_HUB_CACHE=@CACHE_DIR@ @PYTHON@ - @DOWNLOAD_ARGS@ <<'VLLM_WS_PY'
@DOWNLOAD_PY@
VLLM_WS_PY
  echo 'verifying checksums' >&2
  if ! HF_HUB_CACHE=@CACHE_DIR@ @PYTHON@ - @REPO@ @REVISION@ @SNAPSHOT@ @MANIFEST@ @EXCLUDE@ <<'VLLM_WS_PY'
@VERIFY_PY@
VLLM_WS_PY
  then
    if [ "$(own_kind @REVISION_ENTRY@)" = made ]; then
      own_remove_hf_revision @CACHE_DIR@ @REPO@ @REVISION@
    else
      echo @NOT_OURS@ >&2
    fi
    exit 1
  fi
fi
