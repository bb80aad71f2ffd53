# Helpers for the lab: read tcpalive's JSON Lines without jq (mawk-compatible).
# Flat objects only (tcpalive's events are flat); string values must not contain
# an escaped quote followed by a comma -- good enough for the fields we read.

# jget(line, key): the raw value of "key" in a one-line JSON object, without quotes
# for strings; "" when absent. null stays "null".
function jget(line, key,    p, rest, v, c) {
    p = index(line, "\"" key "\":")
    if (p == 0) return ""
    rest = substr(line, p + length(key) + 3)
    sub(/^[ \t]+/, "", rest)
    if (substr(rest, 1, 1) == "\"") {
        rest = substr(rest, 2)
        v = ""
        while (length(rest) > 0) {
            c = substr(rest, 1, 1)
            if (c == "\\") { v = v substr(rest, 2, 1); rest = substr(rest, 3); continue }
            if (c == "\"") break
            v = v c; rest = substr(rest, 2)
        }
        return v
    }
    if (match(rest, /^[^,}]*/)) v = substr(rest, 1, RLENGTH)
    sub(/[ \t]+$/, "", v)
    return v
}

function days_from_civil(y, m, d,    era, yoe, doy, doe) {
    if (m <= 2) y -= 1
    era = int((y >= 0 ? y : y - 399) / 400)
    yoe = y - era * 400
    doy = int((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1
    doe = yoe * 365 + int(yoe / 4) - int(yoe / 100) + doy
    return era * 146097 + doe - 719468
}

# rfc3339(s): seconds since the epoch (float) of "2026-11-21T10:00:05.001Z" or
# "...05.001+01:00"; -1 when unparsable.
function rfc3339(s,    y, mo, d, h, mi, sec, rest, off, sign, oh, om) {
    if (!match(s, /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][Tt ][0-9][0-9]:[0-9][0-9]:[0-9][0-9]/)) return -1
    y = substr(s, 1, 4) + 0; mo = substr(s, 6, 2) + 0; d = substr(s, 9, 2) + 0
    h = substr(s, 12, 2) + 0; mi = substr(s, 15, 2) + 0; sec = substr(s, 18, 2) + 0
    rest = substr(s, 20)
    if (match(rest, /^\.[0-9]+/)) { sec += ("0" substr(rest, 1, RLENGTH)) + 0; rest = substr(rest, RLENGTH + 1) }
    off = 0
    if (rest ~ /^[+-][0-9][0-9]:[0-9][0-9]/) {
        sign = substr(rest, 1, 1) == "-" ? -1 : 1
        oh = substr(rest, 2, 2) + 0; om = substr(rest, 5, 2) + 0
        off = sign * (oh * 3600 + om * 60)
    }
    return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off
}

# render(line): one human timeline line from one JSON event:
# "10:00:05.103    5.103s  end           outcome=timeout errno=ETIMEDOUT ..."
function render(line,    rest, out, key, val, c, ev, t, tm) {
    rest = line; out = ""
    sub(/^[ \t]*\{/, "", rest)
    while (match(rest, /^[ \t,]*"[^"]*"[ \t]*:[ \t]*/)) {
        key = substr(rest, 1, RLENGTH); rest = substr(rest, RLENGTH + 1)
        sub(/^[ \t,]*"/, "", key); sub(/"[ \t]*:[ \t]*$/, "", key)
        if (substr(rest, 1, 1) == "\"") {
            rest = substr(rest, 2); val = ""
            while (length(rest) > 0) {
                c = substr(rest, 1, 1)
                if (c == "\\") { val = val substr(rest, 2, 1); rest = substr(rest, 3); continue }
                if (c == "\"") { rest = substr(rest, 2); break }
                val = val c; rest = substr(rest, 2)
            }
            if (val ~ / /) val = "\"" val "\""
        } else if (match(rest, /^[^,}]*/)) {
            val = substr(rest, 1, RLENGTH); rest = substr(rest, RLENGTH + 1)
        }
        if (key == "event") ev = val
        else if (key == "t") t = val
        else if (key == "time") tm = val
        else if (key != "conn") out = out " " key "=" val
    }
    return sprintf("%-12s %8.3fs  %-13s%s", substr(tm, 12, 12), t + 0, ev, out)
}
