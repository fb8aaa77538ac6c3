#!/usr/bin/python3
"""Traffic for the datapath tests, run inside a pod namespace with `nsenter --net=...`.
Every mode is bounded in time; results are one JSON line on stdout."""
import json, socket, struct, sys, time

def out(**kw):
    print(json.dumps(kw), flush=True)

def tcp_server(port, seconds):
    # echo server: every accepted connection echoes until closed
    import selectors
    sel = selectors.DefaultSelector()
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(('0.0.0.0', port)); ls.listen(64); ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ)
    out(listening=port)
    end = time.time() + seconds
    while time.time() < end:
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            if s is ls:
                c, _ = ls.accept(); c.setblocking(False); sel.register(c, selectors.EVENT_READ)
                continue
            try:
                data = s.recv(65536)
            except OSError:
                data = b''
            if not data:
                sel.unregister(s); s.close()
            else:
                try: s.sendall(data)
                except OSError: pass

def udp_server(port, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', port)); s.settimeout(0.2)
    out(listening=port)
    end = time.time() + seconds
    while time.time() < end:
        try:
            data, peer = s.recvfrom(65536); s.sendto(data, peer)
        except socket.timeout:
            pass

def tcp_connect(ip, port, timeout):
    s = socket.socket(); s.settimeout(timeout)
    try:
        s.connect((ip, port)); s.sendall(b'ping'); data = s.recv(16)
        out(ok=data == b'ping', sport=s.getsockname()[1])
    except OSError as e:
        out(ok=False, error=type(e).__name__)

def udp_send(ip, port, timeout, sport):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(timeout)
    if sport: s.bind(('0.0.0.0', sport))
    try:
        s.connect((ip, port))  # connected, so ICMP errors surface as exceptions
        s.send(b'ping'); data = s.recv(16)
        out(ok=data == b'ping', sport=s.getsockname()[1])
    except OSError as e:
        out(ok=False, error=type(e).__name__, sport=s.getsockname()[1])

def tcp_stream(ip, port, seconds, interval):
    """One connection; a message every interval with its echo awaited (1 s). Prints a line per
    round: {"seq":n,"ok":bool}. Stops at the first failure or after seconds."""
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect((ip, port))
    except OSError as e:
        out(seq=-1, ok=False, error=type(e).__name__); return
    out(seq=0, ok=True, sport=s.getsockname()[1])
    s.settimeout(1)
    end = time.time() + seconds; seq = 0
    while time.time() < end:
        seq += 1
        msg = b'%08d' % seq
        try:
            s.sendall(msg); got = b''
            while len(got) < len(msg):
                chunk = s.recv(len(msg) - len(got))
                if not chunk: raise ConnectionError('closed')
                got += chunk
            out(seq=seq, ok=got == msg)
        except OSError as e:
            out(seq=seq, ok=False, error=type(e).__name__); return
        time.sleep(interval)

def udp_flood(ip, port, seconds):
    """Sends small UDP packets as fast as it can for `seconds` (at most 2,000,000)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out(flooding=ip)
    end = time.time() + seconds; sent = 0
    while sent < 2000000 and time.time() < end:
        for _ in range(100):
            try: s.sendto(b'x', (ip, port)); sent += 1
            except OSError: pass
    out(sent=sent)

def checksum(data):
    if len(data) % 2: data += b'\0'
    s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff

def raw_send(proto, src, dst, sport, dport, flags):
    """Crafts one TCP (flags: e.g. 'SA', 'A') or UDP packet from src:sport to dst:dport."""
    saddr, daddr = socket.inet_aton(src), socket.inet_aton(dst)
    payload = b'unsolicited'
    if proto == 'tcp':
        bits = sum({'F': 1, 'S': 2, 'R': 4, 'P': 8, 'A': 16}[c] for c in flags)
        hdr = struct.pack('!HHIIBBHHH', sport, dport, 12345, 6789 if 'A' in flags else 0, 5 << 4, bits, 65535, 0, 0)
        pseudo = saddr + daddr + struct.pack('!BBH', 0, 6, len(hdr) + len(payload))
        csum = checksum(pseudo + hdr + payload)
        l4 = hdr[:16] + struct.pack('!H', csum) + hdr[18:] + payload
        number = socket.IPPROTO_TCP
    else:
        hdr = struct.pack('!HHHH', sport, dport, 8 + len(payload), 0)
        pseudo = saddr + daddr + struct.pack('!BBH', 0, 17, len(hdr) + len(payload))
        csum = checksum(pseudo + hdr + payload) or 0xffff
        l4 = hdr[:6] + struct.pack('!H', csum) + payload
        number = socket.IPPROTO_UDP
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, number)
    s.sendto(l4, (dst, 0))
    out(sent=True)

def sniff(iface, port, seconds):
    """Counts IPv4 TCP/UDP packets arriving on iface with the given source or destination port."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    s.bind((iface, 0)); s.settimeout(0.1)
    out(sniffing=iface)
    end = time.time() + seconds; count = 0
    while time.time() < end:
        try:
            frame, addr = s.recvfrom(65536)
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING: continue
        ip = frame[14:]
        if ip[9] not in (6, 17): continue
        ihl = (ip[0] & 15) * 4
        sp, dp = struct.unpack('!HH', ip[ihl:ihl + 4])
        if port in (sp, dp): count += 1
    out(count=count)

def ping(ip, timeout):
    import subprocess
    rc = subprocess.call(['ping', '-c1', '-W', str(int(timeout)), ip], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out(ok=rc == 0)

def who_server(port, seconds, me):
    """TCP and UDP on port: every message is answered with `me` (the pod's address), so a client
    of a service can tell which backend answered."""
    import selectors
    sel = selectors.DefaultSelector()
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(('0.0.0.0', port)); ls.listen(256); ls.setblocking(False)
    us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); us.bind(('0.0.0.0', port)); us.setblocking(False)
    sel.register(ls, selectors.EVENT_READ); sel.register(us, selectors.EVENT_READ)
    out(listening=port)
    end = time.time() + seconds; answer = me.encode()
    while time.time() < end:
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            if s is ls:
                c, _ = ls.accept(); c.setblocking(False); sel.register(c, selectors.EVENT_READ)
            elif s is us:
                try:
                    _, peer = us.recvfrom(2048); us.sendto(answer, peer)
                except OSError: pass
            else:
                try: data = s.recv(2048)
                except OSError: data = b''
                if not data: sel.unregister(s); s.close()
                else:
                    try: s.sendall(answer)
                    except OSError: pass

def who_once(s):
    s.sendall(b'whoami'); data = s.recv(64)
    if not data: raise ConnectionError('closed')
    return data.decode()

def tcp_who(ip, port, count, timeout, sport=0):
    """count sequential connections (at most 5000; from a fixed source port if given); counts
    the answering backends."""
    counts, errors = {}, {}
    for _ in range(min(count, 5000)):
        s = socket.socket(); s.settimeout(timeout)
        try:
            if sport:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', sport))
            s.connect((ip, port)); who = who_once(s); counts[who] = counts.get(who, 0) + 1
        except OSError as e:
            errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
        finally:
            s.close()
    out(counts=counts, errors=errors)

def tcp_who_stream(ip, port, seconds, interval):
    """One connection asking who answers every interval; a line per round {seq, ok, who}."""
    s = socket.socket(); s.settimeout(2)
    try: s.connect((ip, port))
    except OSError as e: out(seq=-1, ok=False, error=type(e).__name__); return
    end = time.time() + seconds; seq = 0
    while time.time() < end:
        try: out(seq=seq, ok=True, who=who_once(s))
        except OSError as e: out(seq=seq, ok=False, error=type(e).__name__); return
        seq += 1; time.sleep(interval)

def udp_who(ip, port, rounds, interval, sport):
    """One UDP flow (fixed source port) asking who answers, rounds times; one summary line."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
    if sport: s.bind(('0.0.0.0', sport))
    s.connect((ip, port)); whos, errors = [], {}
    for _ in range(min(rounds, 1000)):
        try: s.send(b'whoami'); whos.append(s.recv(64).decode())
        except OSError as e: errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
        time.sleep(interval)
    out(whos=whos, errors=errors)

def conn_rate(ip, port, seconds):
    """New TCP connections (connect, ask, close) as fast as possible for `seconds` (<= 200000)."""
    done = failed = 0; start = time.time(); end = start + seconds
    while time.time() < end and done + failed < 200000:
        s = socket.socket(); s.settimeout(1)
        try: s.connect((ip, port)); who_once(s); done += 1
        except OSError: failed += 1
        finally: s.close()
    out(connections=done, failed=failed, seconds=time.time() - start)

def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == 'tcp-server': tcp_server(int(args[0]), float(args[1]))
    elif mode == 'udp-server': udp_server(int(args[0]), float(args[1]))
    elif mode == 'tcp-connect': tcp_connect(args[0], int(args[1]), float(args[2]))
    elif mode == 'udp-send': udp_send(args[0], int(args[1]), float(args[2]), int(args[3]) if len(args) > 3 else 0)
    elif mode == 'tcp-stream': tcp_stream(args[0], int(args[1]), float(args[2]), float(args[3]))
    elif mode == 'raw': raw_send(args[0], args[1], args[2], int(args[3]), int(args[4]), args[5] if len(args) > 5 else '')
    elif mode == 'udp-flood': udp_flood(args[0], int(args[1]), float(args[2]))
    elif mode == 'ping': ping(args[0], float(args[1]))
    elif mode == 'sniff': sniff(args[0], int(args[1]), float(args[2]))
    elif mode == 'who-server': who_server(int(args[0]), float(args[1]), args[2])
    elif mode == 'tcp-who': tcp_who(args[0], int(args[1]), int(args[2]), float(args[3]), int(args[4]) if len(args) > 4 else 0)
    elif mode == 'tcp-who-stream': tcp_who_stream(args[0], int(args[1]), float(args[2]), float(args[3]))
    elif mode == 'udp-who': udp_who(args[0], int(args[1]), int(args[2]), float(args[3]), int(args[4]))
    elif mode == 'conn-rate': conn_rate(args[0], int(args[1]), float(args[2]))
    else: sys.exit('unknown mode ' + mode)

main()
