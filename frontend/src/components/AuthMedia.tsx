// Images and downloads that work when the API needs a bearer token: a plain <img>/<a> when
// no token is set, fetched into an object URL when one is.
import { useEffect, useState, type MouseEvent } from "react";
import { getToken } from "../api/auth";
import { fetchBlobUrl, fetchDownload } from "../api/client";

export function AuthImage(props: { src: string; alt: string; className?: string }) {
  const token = getToken();
  const [url, setUrl] = useState<string | null>(token ? null : props.src);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    if (!token) {
      setUrl(props.src);
      return;
    }
    let revoke: string | null = null;
    let alive = true;
    fetchBlobUrl(props.src)
      .then((u) => {
        revoke = u;
        if (alive) setUrl(u);
        else URL.revokeObjectURL(u);
      })
      .catch(() => alive && setFailed(true));
    return () => {
      alive = false;
      if (revoke) URL.revokeObjectURL(revoke);
    };
  }, [props.src, token]);
  if (failed) return <div className="img-missing">image unavailable</div>;
  return url ? <img src={url} alt={props.alt} className={props.className} onError={() => setFailed(true)} /> : <div className="img-loading" />;
}

/** A download named as the server names the file (its Content-Disposition), with or without a token. */
export function DownloadLink(props: { href: string; label: string; className?: string }) {
  const click = async (e: MouseEvent<HTMLAnchorElement>) => {
    if (!getToken()) return; // the browser downloads the plain link, named by the server
    e.preventDefault();
    const { url, filename } = await fetchDownload(props.href);
    const a = document.createElement("a");
    a.href = url;
    a.download = filename ?? "";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  };
  return (
    <a href={props.href} download="" onClick={click} className={props.className ?? "button"}>
      {props.label}
    </a>
  );
}
