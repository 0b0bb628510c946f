"""A TLS-terminating TCP proxy for the tests: HTTPS on 127.0.0.1:<port> in front of the plain-HTTP fake.

Usage: proxy.py CERT KEY UPSTREAM_PORT PORT_FILE
Writes the port it listens on to PORT_FILE once it accepts connections; one thread per connection.
"""
import socket
import ssl
import sys
import threading

cert, key, upstream_port, port_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", 0))
listener.listen(16)


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(conn):
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError) as e:
        # A client that does not trust the certificate ends here: say so for the test's log.
        print(f"handshake failed: {e}", file=sys.stderr, flush=True)
        conn.close()
        return
    up = socket.create_connection(("127.0.0.1", upstream_port))
    threading.Thread(target=pump, args=(up, tls), daemon=True).start()
    pump(tls, up)


with open(port_file + ".tmp", "w") as f:
    f.write(str(listener.getsockname()[1]))
import os  # noqa: E402

os.rename(port_file + ".tmp", port_file)
while True:
    c, _ = listener.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
