//! The session and the mover state machine stepped directly, without sockets: requests in,
//! outcomes and posts out.

use std::sync::Arc;

use parking_lot::Mutex;
use qorestor_ndmp::message::{mover_mode, NdmpError};
use qorestor_ndmp::mover::{halt, pause, state, MoverState};
use qorestor_ndmp::reply::{Post, Reply};
use qorestor_ndmp::request::{Auth, Request, TcpAddr};
use qorestor_ndmp::session::{Outbox, Outcome, Session};
use qorestor_ndmp::{Credentials, Shared};

use crate::fixture::{Fixture, PASSWORD, TAPE, USER};

#[derive(Default)]
struct Posts(Mutex<Vec<Post>>);

impl Outbox for Posts {
    fn post(&self, post: Post) {
        self.0.lock().push(post);
    }
}

fn session(f: &Fixture) -> (Session, Arc<Posts>) {
    let shared = Shared {
        libraries: f.libraries.clone(),
        system_name: "test".into(),
        credentials: Box::new(|| Some(Credentials { user: USER.into(), password: PASSWORD.into() })),
        opened: Default::default(),
    };
    let posts = Arc::new(Posts::default());
    (Session::new(Arc::new(shared), posts.clone(), std::net::Ipv4Addr::LOCALHOST), posts)
}

fn error(o: Outcome) -> NdmpError {
    match o {
        Outcome::Reply(Reply::Error(e)) => e,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn open_then_authenticate_then_serve() {
    let f = Fixture::new();
    let (mut s, _) = session(&f);
    assert_eq!(error(s.handle(Request::TapeClose)), NdmpError::IllegalState);
    assert_eq!(error(s.handle(Request::ConnectOpen { version: 2 })), NdmpError::IllegalArgs);
    assert_eq!(error(s.handle(Request::ConnectOpen { version: 4 })), NdmpError::NoErr);
    assert_eq!(error(s.handle(Request::ConnectOpen { version: 4 })), NdmpError::IllegalState);
    assert_eq!(error(s.handle(Request::TapeClose)), NdmpError::NotAuthorized);
    assert_eq!(error(s.handle(Request::ConnectClientAuth(Auth::None))), NdmpError::NotAuthorized);
    let md5 = Auth::Md5 { user: USER.into(), digest: [0; 16] };
    assert_eq!(error(s.handle(Request::ConnectClientAuth(md5))), NdmpError::NotAuthorized, "no challenge asked");
    let text = Auth::Text { user: USER.into(), password: PASSWORD.into() };
    assert_eq!(error(s.handle(Request::ConnectClientAuth(text))), NdmpError::NoErr);
    assert!(s.authenticated());
    assert_eq!(error(s.handle(Request::TapeClose)), NdmpError::DevNotOpen);
    assert_eq!(error(s.handle(Request::TapeOpen { device: TAPE.into(), mode: 1 })), NdmpError::NoErr);
    assert_eq!(s.handle(Request::Unsupported { code: 0x401 }), Outcome::HeaderError(NdmpError::NotSupported));
    assert_eq!(s.handle(Request::ConnectClose), Outcome::Close);
}

#[test]
fn mover_states_and_reasons() {
    let mut m = MoverState::default();
    assert_eq!(m.resume(), Err(NdmpError::IllegalState));
    assert_eq!(m.stop(), Err(NdmpError::IllegalState));
    assert!(m.abort().is_err() && m.close().is_err());
    assert_eq!(m.set_window(100, 10, false), Err(NdmpError::IllegalArgs), "not a record multiple");
    assert_eq!(m.set_window(0, 10240 * 2, false), Ok(()));
    assert_eq!(m.check_start(9, true), Err(NdmpError::IllegalArgs));
    assert_eq!(m.check_start(mover_mode::READ, false), Err(NdmpError::IllegalArgs));
    let a = TcpAddr { ip: 0x7F00_0001, port: 9 };
    m.listening(mover_mode::READ, a);
    assert_eq!(m.state, state::LISTEN);
    assert_eq!(m.set_record_size(512), Err(NdmpError::IllegalState));
    assert_eq!(m.set_window(0, 1, false), Err(NdmpError::IllegalState), "v4 refuses it while listening");
    assert_eq!(m.set_window(0, 10240 * 2, true), Ok(()), "v3 accepts it");
    m.connected(mover_mode::READ, a);
    assert_eq!(m.read(0, 1), Err(NdmpError::IllegalState), "MOVER_READ is for mode WRITE");
    m.record_num = 2;
    assert!(m.window_end());
    let posts = m.pause(pause::EOW, m.position());
    assert_eq!(posts, vec![Post::MoverPaused { reason: pause::EOW, seek_position: 20480 }]);
    assert_eq!(m.reply().pause_reason, pause::EOW);
    assert_eq!(m.reply().halt_reason, halt::NA);
    assert_eq!(m.set_window(20480, u64::MAX, false), Ok(()));
    assert_eq!(m.resume(), Ok(()));
    assert_eq!(m.reply().pause_reason, pause::NA);
    let posts = m.halt(halt::MEDIA_ERROR);
    assert!(matches!(&posts[..], [Post::Log { log_type: 2, .. }, Post::MoverHalted(halt::MEDIA_ERROR)]), "{posts:?}");
    assert!(m.halt(halt::ABORTED).is_empty(), "halted once");
    assert_eq!(m.stop(), Ok(()));
    assert_eq!(m.state, state::IDLE);
    assert_eq!(m.record_size, 10240, "STOP keeps the record size");
}
