# shellcheck shell=sh
# /etc/profile.d/vllm-workstation-cuda.sh, for login shells (sourced by sh): CUDA_HOME, and the toolkit
# on PATH and LD_LIBRARY_PATH. Prepends without duplicating, so sourcing it twice changes nothing. Each
# library directory is prepended in turn, so WSL's libcuda (@WSL_LIB@) comes last in the loop to end
# up first: a stub libcuda from the toolkit would shadow the real driver.

export CUDA_HOME=@CUDA_HOME@
case ":$PATH:" in *":$CUDA_HOME/bin:"*) ;; *) export PATH="$CUDA_HOME/bin:$PATH" ;; esac
for d in "$CUDA_HOME/lib64" @WSL_LIB@; do
  case ":${LD_LIBRARY_PATH:-}:" in *":$d:"*) ;; *) export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;; esac
done
