/**
 * The one glob rule of hpcpipe (pull patterns, map items staged from local
 * files): `*` and `?` stay inside one path segment, `**` spans any number of
 * them (`a/**\/b` also matches `a/b`); every other character is literal.
 */

/** Whether a path segment holds a wildcard. */
export function hasWildcard(segment: string): boolean {
  return segment.includes("*") || segment.includes("?");
}

/** A pattern of `/`-separated segments as an anchored regular expression. */
export function globRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === "*" && pattern[i + 1] === "*") {
      re += ".*";
      i++;
      if (pattern[i + 1] === "/") i++;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}
