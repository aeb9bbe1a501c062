# The project's vocabulary: install, proto, run, test, lint, bench.
# `make run` and `make test` install whatever is missing on a fresh machine by themselves.

# The interpreter behind .venv: the first of these that runs. Python 3.12+ has eager tasks, which make
# the mediator's per-item event dispatch cheap (cqrs/_eager.py); 3.11 works too, a little slower.
PYTHON ?= $(firstword $(foreach p,python3.12 $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) python3,\
	$(if $(shell $(p) -c 'import sys; print(sys.version_info >= (3, 11))' 2>/dev/null | grep True),$(p))))
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VENV := .venv
PY := $(VENV)/bin/python
PROTOS := $(shell find protos -name '*.proto')
TEST_PROTOS := $(shell find tests/protos -name '*.proto')
# each example's own protos: examples/<name>/protos is the import root of its .proto files
EXAMPLE_PROTOS := $(shell find examples -path '*/protos/*' -name '*.proto')
# Vendored protos import one another by their path upstream: VIRTUAL=FOLDER maps that path onto the
# copy, so they compile unmodified. gRPC's interop protos live at src/proto/grpc/testing in grpc/grpc.
VENDORED_PROTOS := src/proto/grpc/testing=examples/interop/protos/grpc/testing
GEN := gen
# protoc-gen-cqrs (server/protoc_gen, installed into the venv) writes foo_cqrs.py beside foo_pb2.py
PLUGIN_SOURCES := $(wildcard server/protoc_gen/*.py)
PROTOC := $(PY) -m grpc_tools.protoc --python_out=$(GEN) --pyi_out=$(GEN) --grpc_python_out=$(GEN) \
	--plugin=protoc-gen-cqrs=$(VENV)/bin/protoc-gen-cqrs --cqrs_out=$(GEN)
# what building server/accel/_cwire.pyx leaves in the source tree (pip install -e builds in place)
CWIRE_BUILD := server/accel/_cwire.c server/accel/_cwire.*.so
ADDRESS ?= 127.0.0.1:50051
# the HTTP port of `make run`: gRPC-Web, Connect, SSE and the demo page at /
HTTP_ADDRESS ?= 127.0.0.1:8080
PYTEST_ARGS ?=

.PHONY: install postgresql proto run test lint unit bench demo clean

install: $(VENV)/.installed-$(PYVER) $(GEN)/.generated tools/node_modules/.installed clients/node/node_modules/.installed \
	$(GEN)/protos.binpb postgresql
	# curl: the SSE tests read event streams with `curl -N` (Debian's package, only when missing)
	command -v curl >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq curl)

# PostgreSQL's server binaries (initdb, pg_ctl) for the replica tests and bench: Debian's package, only
# when no initdb is found (examples/files/pgserver.py looks in the same places)
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null \
	  || { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	       else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; fi; }

$(VENV)/.installed-$(PYVER): pyproject.toml setup.py server/accel/_cwire.pyx
	# a venv made by another interpreter is made anew
	if [ -x $(PY) ] && [ "$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != "$(PYVER)" ]; then rm -rf $(VENV); fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# the compiled wire encoder is rebuilt from its .pyx, never left over from an earlier build
	rm -f $(CWIRE_BUILD)
	$(PY) -m pip install --quiet -e '.[dev,fast,bus,observability,web,postgres]'
	$(PY) -c 'import server.accel._cwire' 2>/dev/null \
	  || echo "note: the compiled wire encoder was not built (no C compiler?); the codec encodes through protobuf." \
	       "With a compiler: touch server/accel/_cwire.pyx && make install" >&2
	# generated protobuf modules live in gen/ (built from protos/, never committed)
	$(PY) -c "import sysconfig, pathlib; pathlib.Path(sysconfig.get_paths()['purelib'], 'cqrs_grpc_gen.pth').write_text(str(pathlib.Path('$(GEN)').resolve()) + '\n')"
	touch $@

proto: $(GEN)/.generated

$(GEN)/.generated: $(PROTOS) $(TEST_PROTOS) $(EXAMPLE_PROTOS) $(PLUGIN_SOURCES) $(VENV)/.installed-$(PYVER)
	rm -rf $(GEN) && mkdir -p $(GEN)
	$(PROTOC) -Iprotos $(PROTOS)
	# services and messages used only by the tests
	$(PROTOC) -Iprotos -Itests/protos $(TEST_PROTOS)
	# the examples' protos, each example's protos/ its root; vendored ones under the path they name
	for root in $$(find examples -mindepth 2 -maxdepth 2 -name protos -type d); do \
	  files=$$(find $$root -name '*.proto' $(foreach m,$(VENDORED_PROTOS),-not -path '$(word 2,$(subst =, ,$(m)))/*')); \
	  if [ -n "$$files" ]; then $(PROTOC) -I$$root $$files || exit 1; fi; \
	done
	$(foreach m,$(VENDORED_PROTOS),$(PROTOC) -I$(m) $(patsubst $(word 2,$(subst =, ,$(m)))/%,$(word 1,$(subst =, ,$(m)))/%,\
	  $(wildcard $(word 2,$(subst =, ,$(m)))/*.proto)) &&) true
	touch $@

# buf (for `buf curl`) comes from the npm registry, pinned in tools/package-lock.json.
tools/node_modules/.installed: tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# protos/ as one descriptor set, for clients that load schemas at run time (tools/connect_call.mjs)
$(GEN)/protos.binpb: $(PROTOS) $(GEN)/.generated tools/node_modules/.installed
	tools/node_modules/.bin/buf build protos -o $@

# Debian's chromium (with a font for its screenshots) drives the demo page's browser test; apt runs
# only when /usr/bin/chromium is missing (as root, else through sudo).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -o DPkg::Lock::Timeout=300 \
	--no-install-recommends chromium fonts-liberation
install: $(CHROMIUM)
$(CHROMIUM):
	$(APT_INSTALL) || ($(SUDO) apt-get update && $(APT_INSTALL))

# The Node.js client's dependencies (@grpc/grpc-js, @grpc/proto-loader), pinned in its package-lock.json.
clients/node/node_modules/.installed: clients/node/package.json clients/node/package-lock.json
	cd clients/node && npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: install
	$(PY) -m server --app examples.files:create_app --address $(ADDRESS) --http-address $(HTTP_ADDRESS)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	# the classes protoc-gen-cqrs generated into gen/ are strictly typed too
	cd $(GEN) && MYPYPATH=.:.. ../$(PY) -m mypy --strict --explicit-package-bases --follow-imports=silent \
	  --cache-dir ../.mypy_cache $$(find . -name '*_cqrs.py')

unit: install
	$(PY) -m pytest tests/unit -q

test: lint
	$(PY) -m pytest -q $(PYTEST_ARGS); code=$$?; \
	  if [ $$code -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$code

bench: install
	# h2load (apt nghttp2-client), py-spy and the python-cqrs venv, each only if missing
	$(PY) -m bench._tools
	$(PY) -m bench

# With `make run` in another terminal: upload the sample files, then process them with the progress bar.
demo: install
	ids=$$($(PY) -m clients.python --address $(ADDRESS) upload --json clients/samples/* \
	  | $(PY) -c 'import json, sys; print(" ".join(json.loads(line)["file_id"] for line in sys.stdin))') \
	  && $(PY) -m clients.python --address $(ADDRESS) process $$ids

clean:
	rm -rf $(VENV) $(GEN) tools/node_modules clients/node/node_modules build $(CWIRE_BUILD)
