/** `Authorization: Bearer <token>`: printable ASCII, at most 512 characters. */
const bearer = /^Bearer[ ]+([!-~]{1,512})$/i;

/** The bearer token an Authorization header carries, or undefined. */
export function bearerToken(authorization: string | undefined): string | undefined {
  return bearer.exec(authorization ?? "")?.[1];
}
