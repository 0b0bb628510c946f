# Packaging targets (included by the Makefile): generated man pages and completions, install, .deb packages,
# the session server image. Tools: dpkg-deb, objdump/readelf (dpkg and binutils, on every Debian build host).

.PHONY: gen install package server-image

PREFIX ?= /usr/local
DESTDIR ?=

gen: web-assets ## Man pages and bash/zsh/fish completions of both binaries into target/gen/{man,completions} (release build)
	@bash scripts/gen.sh

install: gen ## Install both binaries, man pages and completions under PREFIX (/usr/local), staged in DESTDIR
	@PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" bash scripts/install.sh

package: web-assets ## .deb packages ddcoterm and ddcoterm-server into target/package (dpkg-deb; release build)
	@bash scripts/package.sh

server-image: base-image web-assets ## Session server image ddcoterm-server:dev from the release binary; prints its size
	@bash scripts/server-image.sh
