# `make book` and `make test` each create .venv from requirements.txt when it
# is missing or older than requirements.txt / pyproject.toml.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Notebooks and tests run on this many processes (one torch thread each).
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

VENDOR := _vendor
# Served by the book as static files, so equations and widgets work offline.
NPM_PACKAGES := mathjax@3.2.2 @jupyter-widgets/html-manager@1.0.6 requirejs@2.3.4
CDN := https://cdn.jsdelivr.net/npm

.PHONY: book student-book test venv vendor browser sandbox clean

venv: $(STAMP)

vendor: $(VENDOR)/.done

# npm installs MathJax and the widget manager into $(VENDOR); without npm,
# small loader shims fetch the same files from a CDN at page load instead.
# assets-path.js tells the widget manager where its files are: its font URLs
# follow the require.js path of its module, which by default is relative to
# the page (and 404s). It runs after require.js and before embed-amd.js.
define ASSETS_PATH_JS
(function () { var dir = DIR; window.__jupyter_widgets_assets_path__ = dir; require.config({paths: {'@jupyter-widgets/html-manager/dist': dir.slice(0, -1)}}); })();
endef
export ASSETS_PATH_JS
$(VENDOR)/.done: Makefile
	@rm -rf $(VENDOR) .vendor-npm && mkdir -p $(VENDOR)/widgets $(VENDOR)/mathjax
	@if command -v npm >/dev/null 2>&1 && npm install --prefix .vendor-npm \
	    --no-audit --no-fund --silent $(NPM_PACKAGES); then \
	  cp -r .vendor-npm/node_modules/mathjax/es5/. $(VENDOR)/mathjax/; \
	  cp .vendor-npm/node_modules/requirejs/require.js $(VENDOR)/widgets/; \
	  find .vendor-npm/node_modules/@jupyter-widgets/html-manager/dist \
	    -maxdepth 1 -type f ! -name '*.map' -exec cp {} $(VENDOR)/widgets/ \; ; \
	  echo "$$ASSETS_PATH_JS" | sed "s|DIR|document.currentScript.src.replace(/[^/]*\$$/, '')|" > $(VENDOR)/widgets/assets-path.js; \
	  echo "vendor: MathJax and widget manager installed locally"; \
	else \
	  echo "vendor: npm unavailable, the book loads MathJax and widgets from $(CDN)"; \
	  echo "var s = document.createElement('script'); s.async = true; s.src = '$(CDN)/mathjax@3.2.2/es5/tex-mml-chtml.js'; document.head.appendChild(s);" > $(VENDOR)/mathjax/tex-mml-chtml.js; \
	  echo "document.write('<script>' + $$(echo "$$ASSETS_PATH_JS" | sed "s|DIR|'$(CDN)/@jupyter-widgets/html-manager@1.0.6/dist/'|" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))') + '<\\/script>');" > $(VENDOR)/widgets/assets-path.js; \
	  echo "document.write('<script src=\"$(CDN)/requirejs@2.3.4/require.js\"><\/script>');" > $(VENDOR)/widgets/require.js; \
	  echo "document.write('<script src=\"$(CDN)/@jupyter-widgets/html-manager@1.0.6/dist/embed-amd.js\" data-jupyter-widgets-cdn=\"$(CDN)/\"><\/script>');" > $(VENDOR)/widgets/embed-amd.js; \
	fi
	@rm -rf .vendor-npm
	@touch $@

# Headless Chromium for the browser test of the built book (Debian package).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v /usr/bin/chromium >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "browser: could not install chromium; the browser test will say so"

# bubblewrap, the grader's sandbox for student code (Debian package).
sandbox:
	@command -v bwrap >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; } || \
	  echo "sandbox: could not install bubblewrap; grading tests will say so"

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $(STAMP)

# Execute the notebooks whose code changed on $(JOBS) processes into the
# build's cache (gradlab/execute.py); the build then only reads it.
book: $(STAMP) vendor
	$(BIN)/python -m gradlab.execute --jobs $(JOBS)
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "book: $(CURDIR)/_build/html/index.html"

# The book with the released labs: no solution text anywhere in it, for a
# course that grades the labs (gradlab/coursework/student_book.py).
student-book: $(STAMP) vendor
	$(BIN)/python -m gradlab.execute --jobs $(JOBS) book/*.ipynb
	$(BIN)/python -m gradlab.coursework student-book --out _build/student

# Unit tests, nbval on every notebook and device, coursework, the book build
# and the browser check, spread over $(JOBS) processes; ends with a table of
# every notebook's time and the 25 slowest tests.
test: $(STAMP) vendor browser sandbox
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup --durations=25

clean:
	rm -rf _build $(VENDOR)
