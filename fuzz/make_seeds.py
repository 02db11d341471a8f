#!/usr/bin/env python3
"""Writes the committed seed corpora, fuzz/corpus/<target>/seed-*.

Every seed is a real message shape from shared/PROTOCOLS.md and shared/PROTOCOLS-LIVE.md; the
Realtime and GPT-Live server events are the reference-based JSON literals of
crates/openai-realtime/tests/{realtime,live}_server_events.rs. The signature seeds are
checked against the test vectors of PROTOCOLS section 4.7 before they are written. Run it
from anywhere (python3 fuzz/make_seeds.py); it only (over)writes seed-* files.
"""
import base64, hashlib, hmac, json, os, re, struct, urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
ROOT = os.path.join(HERE, "corpus")
def put(target, name, data):
    d = os.path.join(ROOT, target); os.makedirs(d, exist_ok=True)
    if isinstance(data, str): data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f: f.write(data)

SID_MZ = "MZ00000000000000000000000000000001"; SID_AC = "AC00000000000000000000000000000001"; SID_CA = "CA00000000000000000000000000000001"
silence = base64.b64encode(b"\xff" * 160).decode()
ramp = base64.b64encode(bytes(range(160))).decode()

# ---- twilio_stream (PROTOCOLS §1.4)
T = "twilio_stream"
put(T, "connected.json", '{"event":"connected","protocol":"Call","version":"1.0.0"}')
put(T, "start.json", json.dumps({"event":"start","sequenceNumber":"1","streamSid":SID_MZ,"start":{"streamSid":SID_MZ,"accountSid":SID_AC,"callSid":SID_CA,"tracks":["inbound"],"customParameters":{"tenant":"acme","token":"b1f0"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}, indent=2))
put(T, "start-minimal.json", json.dumps({"event":"start","sequenceNumber":1,"streamSid":SID_MZ,"start":{"accountSid":SID_AC,"callSid":SID_CA,"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}, separators=(",",":")))
put(T, "media.json", json.dumps({"event":"media","sequenceNumber":"2","streamSid":SID_MZ,"media":{"track":"inbound","chunk":"1","timestamp":"0","payload":silence}}, separators=(",",":")))
put(T, "media-numbers.json", json.dumps({"event":"media","sequenceNumber":3,"streamSid":SID_MZ,"media":{"track":"inbound","chunk":2,"timestamp":20,"payload":ramp}}, separators=(",",":")))
put(T, "media-escaped.json", '{"event":"media","sequenceNumber":"4","streamSid":"' + SID_MZ + '","media":{"track":"outbound","chunk":"3","timestamp":"40","payload":"\\/\\/\\/\\/8A=="}}')
put(T, "media-event-last.json", '{"sequenceNumber":"5","streamSid":"' + SID_MZ + '","media":{"payload":"AAAA","timestamp":"60","chunk":"4","track":"inbound"},"event":"media"}')
put(T, "dtmf.json", '{"event":"dtmf","streamSid":"' + SID_MZ + '","sequenceNumber":"57","dtmf":{"track":"inbound_track","digit":"1"}}')
put(T, "mark.json", '{"event":"mark","sequenceNumber":"93","streamSid":"' + SID_MZ + '","mark":{"name":"msg_007:1240:17"}}')
put(T, "stop.json", '{"event":"stop","sequenceNumber":"1201","streamSid":"' + SID_MZ + '","stop":{"accountSid":"' + SID_AC + '","callSid":"' + SID_CA + '"}}')
put(T, "unknown.json", '{"event":"hologram","streamSid":"' + SID_MZ + '","hologram":{"depth":3}}')
put(T, "zz-regress-duplicate-event.json", '{"event":"x","streamSid":"a","event":"media"}')
put(T, "mark-missing-name.json", '{"event":"mark","sequenceNumber":"9","streamSid":"MZ1","mark":{}}')

# ---- twilio_webhook (PROTOCOLS §3, §1.9, §5.4)
W = "twilio_webhook"
voice = [("AccountSid",SID_AC),("ApiVersion","2010-04-01"),("CallSid",SID_CA),("CallStatus","ringing"),("Called","+15005550006"),("Caller","+14155551234"),("Direction","inbound"),("From","+14155551234"),("To","+15005550006")]
put(W, "voice.form", urllib.parse.urlencode(voice))
geo = voice + [("FromCity","SAN FRANCISCO"),("FromState","CA"),("FromZip","94105"),("FromCountry","US"),("ToCountry","US"),("CallerName","Zoë O'Neil & Co"),("StirVerstat","TN-Validation-Passed-A"),("CallToken","%7B%22parentCallInfoToken%22%7D")]
put(W, "voice-geo.form", urllib.parse.urlencode(geo))
put(W, "stream-status.form", urllib.parse.urlencode([("AccountSid",SID_AC),("CallSid",SID_CA),("StreamSid",SID_MZ),("StreamName",SID_MZ),("StreamEvent","stream-error"),("StreamError","Stream - WebSocket - Connection Broken Pipe"),("Timestamp","2025-01-01T12:00:00.000Z")]))
put(W, "call-status.form", urllib.parse.urlencode(voice[:3] + [("CallStatus","completed"),("CallDuration","187"),("Duration","4"),("SequenceNumber","3"),("Timestamp","Wed, 01 Jan 2025 12:03:07 +0000"),("CallbackSource","call-progress-events"),("SipResponseCode","200"),("From","+14155551234"),("To","+15005550006")]))
put(W, "repeated-and-malformed.form", "StatusCallbackEvent=ringing&StatusCallbackEvent=answered&CallSid=&CallSid=CA1&AccountSid=AC1&bad=%zz&%E2%82=x&=&&CallDuration=abc")

# ---- twilio_signature: token \n url \n signature \n body (PROTOCOLS §4.7)
S = "twilio_signature"
def sign(token, url, pairs):
    s = url + "".join(k + v for k, v in sorted(set(pairs)))
    return base64.b64encode(hmac.new(token.encode(), s.encode(), hashlib.sha1).digest()).decode()
tok = "0123456789abcdef0123456789abcdef"
u1 = "https://bridge.example.com/twilio/voice"
assert sign(tok, u1, voice) == "UXJ3AqS1hsy5DvIGZslBGZ8WJG0="
put(S, "voice.txt", "\n".join([tok, u1, "UXJ3AqS1hsy5DvIGZslBGZ8WJG0=", urllib.parse.urlencode(voice)]))
put(S, "voice-port.txt", "\n".join([tok, "https://bridge.example.com:443/twilio/voice", "UXJ3AqS1hsy5DvIGZslBGZ8WJG0=", urllib.parse.urlencode(voice)]))
assert sign(tok, "wss://bridge.example.com/media-stream", []) == "0ZvicYzAOFzBhn5l69PEtGsZ3pk="
put(S, "upgrade.txt", "\n".join([tok, "wss://bridge.example.com/media-stream", "0ZvicYzAOFzBhn5l69PEtGsZ3pk=", ""]))
put(S, "upgrade-https.txt", "\n".join([tok, "https://bridge.example.com/media-stream", "0ZvicYzAOFzBhn5l69PEtGsZ3pk=", ""]))
jbody = '{"CallSid":"CA00000000000000000000000000000001","StreamEvent":"stream-started"}'
u3 = "https://bridge.example.com/twilio/json-hook?bodySHA256=" + hashlib.sha256(jbody.encode()).hexdigest()
assert sign(tok, u3, []) == "P0ALcEBR6TUqVlwgFX5L0JsaD7k="
put(S, "json-body.txt", "\n".join([tok, u3, "P0ALcEBR6TUqVlwgFX5L0JsaD7k=", jbody]))
p4 = [("CallSid",SID_CA),("From","+14155551234"),("To","+15005550006")]
u4 = "https://bridge.example.com/twilio/voice?tenant=acme&lang=en"
assert sign(tok, u4, p4) == "YIvXLQA+hi/CfncsvcIZ+Q93MZM="
put(S, "query.txt", "\n".join([tok, u4, "YIvXLQA+hi/CfncsvcIZ+Q93MZM=", urllib.parse.urlencode(p4)]))
p5 = [("CallSid",SID_CA),("CallerName","Zoë O'Neil & Co"),("From","+441234567890"),("StatusCallbackEvent","ringing"),("StatusCallbackEvent","answered"),("StatusCallbackEvent","initiated"),("aLowercaseName","x")]
assert sign(tok, "https://bridge.example.com/twilio/status", p5) == "u/K0iNOa9yYR0rAiI7KbCgxbgyM="
put(S, "repeated.txt", "\n".join([tok, "https://bridge.example.com/twilio/status", "u/K0iNOa9yYR0rAiI7KbCgxbgyM=", urllib.parse.urlencode(p5)]))
p6 = [("CallSid","CA1234567890ABCDE"),("Caller","+14158675309"),("Digits","1234"),("From","+14158675309"),("To","+18005551212")]
assert sign("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", p6) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
put(S, "twilio-python.txt", "\n".join(["12345", "https://mycompany.com/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8=", urllib.parse.urlencode(p6)]))
put(S, "ipv6-userinfo.txt", "\n".join(["k", "http://user:pw@[::1]:8080/hook?x=1#frag", "not base64!", "a=1&b=%FF"]))

# ---- realtime_server_event / live_server_event: shapes from PROTOCOLS §6.6 / PROTOCOLS-LIVE §6,
# as written in the crates' reference-based tests.
def literals(path):
    src = open(path).read()
    out = []
    for m in re.finditer(r'r#"(\{"type".*?)"#', src, re.S):
        s = m.group(1)
        try: json.loads(s)
        except Exception: continue
        if s not in out: out.append(s)
    return out
R = "realtime_server_event"
for i, s in enumerate(literals(os.path.join(REPO, "crates/openai-realtime/tests/realtime_server_events.rs"))):
    t = re.sub(r"[^A-Za-z0-9._-]", "_", str(json.loads(s).get("type")))[:60]
    put(R, f"{i:02}-{t}.json", s)
put(R, "zz-audio-delta-id-first.json", json.dumps({"event_id":"event_4950","type":"response.output_audio.delta","response_id":"resp_001","item_id":"item_008","output_index":0,"content_index":0,"delta":silence}, separators=(",",":")))
L = "live_server_event"
for i, s in enumerate(literals(os.path.join(REPO, "crates/openai-realtime/tests/live_server_events.rs"))):
    t = re.sub(r"[^A-Za-z0-9._-]", "_", str(json.loads(s).get("type")))[:60]
    put(L, f"{i:02}-{t}.json", s)
# Inputs the fuzzers found (tolerated quirks, kept so every run goes through them again).
put(R, "zz-regress-duplicate-type.json", '{"type":"m","type":"}"}')
put(R, "zz-regress-duplicate-item-member.json", '{"type":"response.output_item.done","event_id":"event_3536","response_id":"resp_001","output_index":1,"item":{"id":"fc_001","object":"realtime.item","type":"function_call","status":"completed","name":"transfer_call","call_id":"call_9","object":"realtime.item"}}')
put(L, "zz-regress-float-ulp.json", '{"type":"session.future","start_ms":60006666666666666666666666666600000000000}')
put(L, "zz-output-audio-delta.json", json.dumps({"type":"session.output_audio.delta","delta":silence}, separators=(",",":")))

# ---- base64_audio: u16 LE split size, then payload text
B = "base64_audio"
put(B, "mulaw-20ms.txt", struct.pack("<H", 160) + silence.encode())
put(B, "pcm16-24k-20ms.txt", struct.pack("<H", 320) + base64.b64encode(bytes(960)))
put(B, "ramp-small-chunks.txt", struct.pack("<H", 7) + ramp.encode())
put(B, "padding1.txt", struct.pack("<H", 3) + b"//8A/w==")
put(B, "noncanonical.txt", struct.pack("<H", 3) + b"AAAAab==")
put(B, "empty.txt", struct.pack("<H", 0))

# ---- transcode: selector (low nibble in, high nibble out), lines
X = "transcode"
fmt = {"ulaw":0, "alaw":1, "p8":2, "p16":3, "p24":4, "p48":5, "rate":6}
def sel(a, b): return bytes([fmt[a] | (fmt[b] << 4)])
pcm_sine = b"".join(struct.pack("<h", int(8000 * __import__("math").sin(i / 3.0))) for i in range(480))
put(X, "ulaw-to-pcm24k.txt", sel("ulaw","p24") + b"\n".join([silence.encode(), ramp.encode(), b"!", silence.encode()]))
put(X, "pcm24k-to-ulaw.txt", sel("p24","ulaw") + b"\n".join([base64.b64encode(pcm_sine), base64.b64encode(pcm_sine[:481]), base64.b64encode(pcm_sine[481:])]))
put(X, "alaw-to-ulaw.txt", sel("alaw","ulaw") + b"\n".join([base64.b64encode(bytes(range(256))), b"#\xd5\xd5\xd5"]))
put(X, "pcm16k-to-pcm8k.txt", sel("p16","p8") + b"\n".join([base64.b64encode(pcm_sine[:320]), b"AAAAab==", b"!", base64.b64encode(pcm_sine[:3])]))
put(X, "pcm48k-to-pcm24k.txt", sel("p48","p24") + base64.b64encode(pcm_sine))
put(X, "custom-rates.txt", sel("rate","rate") + struct.pack("<II", 22050, 44100) + base64.b64encode(pcm_sine[:100]))
put(X, "unsupported-rates.txt", sel("rate","ulaw") + struct.pack("<I", 44100) + silence.encode())
