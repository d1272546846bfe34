// The Live page: a click starts the camera; frames go as JPEG to the face API's /live WebSocket
// and each answer's faces are drawn over the video (green: named, orange: unknown) and listed
// below it. At most two frames are outstanding: the API analyses one and keeps the newest waiting
// (it drops older ones and says how many), so what is drawn is never more than one analysis old.
// The site's CSP allows scripts from 'self' only: nothing inline, no eval.
(function () {
  "use strict";
  var SEND_EVERY_MS = 100; // offer a frame ten times a second; the API takes what it can analyse
  var MAX_SIDE = 640; // frames are scaled down to this: faces stay large enough, frames small
  var JPEG_QUALITY = 0.8;
  var RECONNECT_MS = 3000;
  var KNOWN = "rgb(46, 160, 67)"; // the result page's colours (web_frontend/drawing.py)
  var UNKNOWN = "rgb(230, 120, 20)";

  function start() {
    var button = document.getElementById("live-start");
    if (!button) {
      return;
    }
    var status = document.getElementById("live-status");
    var stage = document.getElementById("live-stage");
    var video = document.getElementById("live-video");
    var overlay = document.getElementById("live-overlay");
    var list = document.getElementById("live-faces");
    var ticketUrl = button.getAttribute("data-ticket-url");
    var grab = document.createElement("canvas");
    var socket = null;
    var outstanding = 0;
    var timer = null;
    var stopped = false;

    function say(text, isError) {
      status.hidden = false;
      status.textContent = text;
      status.className = "notice " + (isError ? "notice-error" : "notice-ok");
      status.setAttribute("role", isError ? "alert" : "status");
    }

    function refusal(error) {
      var name = error && error.name;
      if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
        return "The browser refused the camera. Allow this site to use the camera (the camera icon in the address bar), then press Start camera again.";
      }
      if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") {
        return "No camera was found on this device.";
      }
      if (name === "NotReadableError" || name === "TrackStartError") {
        return "The camera is in use by another program, or the system does not let the browser read it.";
      }
      return "The camera could not be started" + (error && error.message ? ": " + error.message : ".");
    }

    function label(face) {
      if (face.identity) {
        return face.identity + " " + face.similarity.toFixed(2);
      }
      return face.decided ? "unknown" : "…";
    }

    function draw(answer) {
      var width = video.videoWidth;
      var height = video.videoHeight;
      if (overlay.width !== width || overlay.height !== height) {
        overlay.width = width;
        overlay.height = height;
      }
      var ctx = overlay.getContext("2d");
      ctx.clearRect(0, 0, width, height);
      var scale = answer.width ? width / answer.width : 1;
      var line = Math.max(2, Math.round(width / 320));
      ctx.lineWidth = line;
      ctx.font = "bold " + Math.max(14, Math.round(width / 40)) + "px sans-serif";
      ctx.textBaseline = "top";
      list.textContent = "";
      answer.faces.forEach(function (face) {
        var colour = face.identity ? KNOWN : UNKNOWN;
        var x1 = face.box[0] * scale;
        var y1 = face.box[1] * scale;
        var x2 = face.box[2] * scale;
        var y2 = face.box[3] * scale;
        var text = label(face);
        ctx.strokeStyle = colour;
        ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
        var textHeight = Math.max(14, Math.round(width / 40)) + 4;
        var textWidth = ctx.measureText(text).width + 8;
        var ty = y1 - textHeight >= 0 ? y1 - textHeight : y1;
        ctx.fillStyle = colour;
        ctx.fillRect(x1, ty, textWidth, textHeight);
        ctx.fillStyle = "#fff";
        ctx.fillText(text, x1 + 4, ty + 2);
        var item = document.createElement("li");
        item.className = face.identity ? "known" : "unknown";
        item.setAttribute("data-track", String(face.track_id));
        item.textContent = text;
        list.appendChild(item);
      });
    }

    function sendFrame() {
      if (!socket || socket.readyState !== WebSocket.OPEN || outstanding >= 2 || !video.videoWidth) {
        return;
      }
      var scale = Math.min(1, MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
      grab.width = Math.round(video.videoWidth * scale);
      grab.height = Math.round(video.videoHeight * scale);
      grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
      outstanding += 1;
      grab.toBlob(
        function (blob) {
          if (!blob || !socket || socket.readyState !== WebSocket.OPEN) {
            outstanding = Math.max(0, outstanding - 1);
            return;
          }
          socket.send(blob);
        },
        "image/jpeg",
        JPEG_QUALITY
      );
    }

    function onAnswer(event) {
      var answer;
      try {
        answer = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      outstanding = Math.max(0, outstanding - 1 - (answer.dropped || 0));
      if (answer.error) {
        say("The face service could not use a frame: " + answer.detail, true);
        return;
      }
      draw(answer);
    }

    function connect() {
      if (stopped) {
        return;
      }
      fetch(ticketUrl, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          return response.json().then(function (body) {
            if (!response.ok) {
              throw new Error(body.detail || "status " + response.status);
            }
            return body;
          });
        })
        .then(function (info) {
          var protocols = [info.protocol || "faces.live"];
          if (info.ticket) {
            protocols.push("ticket." + info.ticket);
          }
          socket = new WebSocket(info.url, protocols);
          outstanding = 0;
          socket.onopen = function () {
            say("Live: faces are named as they appear.", false);
            timer = window.setInterval(sendFrame, SEND_EVERY_MS);
          };
          socket.onmessage = onAnswer;
          socket.onclose = function (event) {
            window.clearInterval(timer);
            socket = null;
            var why = event.reason ? ": " + event.reason : "";
            say("The connection to the face service closed" + why + ". Reconnecting…", true);
            window.setTimeout(connect, RECONNECT_MS);
          };
        })
        .catch(function (error) {
          say("The face service is not reachable (" + error.message + "). Trying again…", true);
          window.setTimeout(connect, RECONNECT_MS);
        });
    }

    button.addEventListener("click", function () {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        say("This browser offers no camera to this page: open the site over HTTPS (or on localhost).", true);
        return;
      }
      button.disabled = true;
      say("Asking the browser for the camera…", false);
      navigator.mediaDevices
        .getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false })
        .then(function (stream) {
          stage.hidden = false;
          video.srcObject = stream;
          return video.play();
        })
        .then(function () {
          say("Camera on; connecting to the face service…", false);
          connect();
        })
        .catch(function (error) {
          button.disabled = false;
          say(refusal(error), true);
        });
    });
    window.addEventListener("pagehide", function () {
      stopped = true;
      if (socket) {
        socket.close();
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
