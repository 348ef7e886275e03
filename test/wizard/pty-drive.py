"""Runs a command in a real pseudo-terminal and answers its prompts (node-pty is not available).

Usage: pty-drive.py '<json>' where json = {"argv": [...], "env": {...}, "steps": [[pattern, keys], ...]}.
Each step waits until `pattern` (a regex) appears in the screen output since the previous match,
with ANSI escapes removed, then types `keys`. Prints {"code": exit code, "transcript": text} as JSON.
"""
import json, os, pty, re, select, subprocess, sys, time

ANSI = re.compile(r'\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]|\x1b[=>]')

def main():
    spec = json.loads(sys.argv[1])
    master, slave = pty.openpty()
    env = dict(os.environ, **spec.get('env', {}), TERM='xterm', COLUMNS='200', LINES='50')
    child = subprocess.Popen(spec['argv'], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=spec.get('cwd'), close_fds=True)
    os.close(slave)
    raw = b''
    consumed = 0
    def read(timeout):
        nonlocal raw
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            return False
        try:
            chunk = os.read(master, 65536)
        except OSError:
            return None
        if not chunk:
            return None
        raw += chunk
        return True
    for pattern, keys in spec['steps']:
        deadline = time.time() + spec.get('timeout', 30)
        while True:
            text = ANSI.sub('', raw.decode('utf-8', 'replace'))
            m = re.search(pattern, text[consumed:])
            if m:
                consumed += m.end()
                break
            if time.time() > deadline or read(0.2) is None:
                child.kill()
                print(json.dumps({'code': None, 'failed_step': pattern, 'transcript': text}))
                return
        time.sleep(0.15)  # let the prompt finish rendering before typing
        for ch in keys:
            os.write(master, ch.encode())
            time.sleep(0.02)
    deadline = time.time() + spec.get('timeout', 30)
    while child.poll() is None and time.time() < deadline:
        read(0.2)
    while read(0.1):
        pass
    if child.poll() is None:
        child.kill()
    print(json.dumps({'code': child.wait(), 'transcript': ANSI.sub('', raw.decode('utf-8', 'replace'))}))

main()
